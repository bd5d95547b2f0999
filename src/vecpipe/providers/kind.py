"""What a provider kind is: its config model, how to open it, how to declare its space.

A kind ("local", "openai", ...) is one `ProviderKind` entry in the registry
(providers/registry.py); its module holds its config model and these hooks, and nothing
outside the registry names it. The rest of vecpipe handles any kind's config through the
entry: AIConfig validates by "kind", the resources open providers through it, and the AI
config service seals, unseals and redacts every `SecretStr` field of every kind.

Secrets: a config model declares each secret as a top-level `pydantic.SecretStr` field
(optional or not). That is the whole contract: they are then encrypted at rest, shown as
"***", hashed (never kept in clear) into provider keys. A secret anywhere else in a config
model (inside a list, a dict, a nested model) could not be found that way, so `register`
refuses such a model.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.settings import Settings

__all__ = [
    "BatchOptions",
    "ProviderConfig",
    "ProviderContext",
    "ProviderKind",
    "secret_fields",
]


class ProviderConfig(BaseModel):
    """The base of every kind's config: `kind` names the kind, `model` the embedding model.

    A kind's model narrows `kind` to `Literal["<kind>"] = "<kind>"`.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    model: str


@dataclass(frozen=True)
class BatchOptions:
    """The operator's batching settings (VECPIPE_LOCAL_BATCH_SIZE and friends), for kinds
    that run a model in this process."""

    batch_size: int
    batch_tokens: int | None  # None: the backend's own (local_backend.default_batch_tokens)
    overlap_tokens: int
    torch_threads: int


@dataclass(frozen=True)
class ProviderContext:
    """What opening or checking a provider may use besides its own config."""

    url_policy: GatewayUrlPolicy  # where a tenant-supplied URL may point
    batch: BatchOptions
    models_dir: Path | None = None  # exported local models (<data dir>/models); None: none

    @classmethod
    def from_settings(
        cls, settings: Settings, url_policy: GatewayUrlPolicy | None = None
    ) -> ProviderContext:
        return cls(
            url_policy=url_policy or GatewayUrlPolicy(settings.allowlisted_gateway_hosts),
            batch=BatchOptions(
                batch_size=settings.local_batch_size,
                batch_tokens=settings.local_batch_tokens,
                overlap_tokens=settings.chunk_overlap_tokens,
                torch_threads=settings.torch_threads,
            ),
            models_dir=settings.data_dir / "models",
        )


C = TypeVar("C", bound=ProviderConfig)


def _unknown_space(config: Any) -> EmbeddingSpace | None:
    return None


def _nothing_to_check(config: Any, context: ProviderContext) -> None:
    return None


@dataclass(frozen=True)
class ProviderKind(Generic[C]):
    """One kind of provider, as the registry knows it.

    - `open(config, context)`: an open provider (probing a gateway, loading a model);
    - `declared_space(config)`: its embedding space when the config tells it without
      opening anything (blocking is allowed: it runs in a thread), else None;
    - `check(config, context)`: what can be refused when a config is saved, before anything
      is opened (a gateway's URL policy); raises a vecpipe `ValidationError`.
    """

    kind: str
    config_model: type[C]
    open: Callable[[C, ProviderContext], Awaitable[EmbeddingProvider]]
    declared_space: Callable[[C], EmbeddingSpace | None] = _unknown_space
    check: Callable[[C, ProviderContext], None] = _nothing_to_check


def secret_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of `model`'s top-level SecretStr fields (`SecretStr` or `SecretStr | None`).

    Raises TypeError when a SecretStr sits anywhere else in a field's type (see above).
    """
    names = []
    for name, field in model.model_fields.items():
        if _is_secret(field.annotation):
            names.append(name)
        elif _mentions_secret(field.annotation):
            raise TypeError(
                f"{model.__name__}.{name}: a secret must be a top-level SecretStr field "
                "(or SecretStr | None) to be encrypted and redacted"
            )
    return tuple(names)


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members == [SecretStr]
    return False


def _mentions_secret(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:  # a model that contains itself
            return False
        inner = seen | {annotation}
        return any(_mentions_secret(f.annotation, inner) for f in annotation.model_fields.values())
    return any(_mentions_secret(arg, seen) for arg in typing.get_args(annotation))


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)
