"""The provider kinds vecpipe knows, keyed by `kind`: the one place that lists them.

`REGISTRY` holds "local" and "openai". Tests (or an embedding application) may `register`
more before they create the app: AIConfig then accepts, and the OpenAPI schema lists, the
new kind's configs, and the resources open its providers. Adding a kind to vecpipe is a
module under providers/kinds/ and one line in `_BUILTIN` below.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind, secret_fields
from vecpipe.providers.kinds import local, openai

__all__ = ["DEFAULT_KIND", "REGISTRY", "ProviderRegistry", "UnknownKind", "register"]

DEFAULT_KIND = "local"  # what a provider config without "kind" is


class UnknownKind(LookupError):
    def __init__(self, kind: object, known: Iterable[str]) -> None:
        names = ", ".join(repr(k) for k in known)
        super().__init__(f"unknown provider kind {kind!r} (known kinds: {names})")


class ProviderRegistry:
    def __init__(self, kinds: Iterable[ProviderKind[Any]] = ()) -> None:
        self._kinds: dict[str, ProviderKind[Any]] = {}
        self._secrets: dict[str, tuple[str, ...]] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: ProviderKind[Any]) -> ProviderKind[Any]:
        """Add `kind`; ValueError if its name is taken or its config model does not fit."""
        if kind.kind in self._kinds:
            raise ValueError(f"provider kind {kind.kind!r} is already registered")
        field = kind.config_model.model_fields.get("kind")
        if field is None or field.default != kind.kind:
            raise ValueError(
                f"{kind.config_model.__name__} must declare kind: Literal[{kind.kind!r}] "
                f"= {kind.kind!r}"
            )
        self._secrets[kind.kind] = secret_fields(kind.config_model)
        self._kinds[kind.kind] = kind
        return kind

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)
        self._secrets.pop(name, None)

    @contextmanager
    def registered(self, kind: ProviderKind[Any]) -> Iterator[ProviderKind[Any]]:
        """`kind` registered for the `with` block (for tests)."""
        self.register(kind)
        try:
            yield kind
        finally:
            self.unregister(kind.kind)

    def names(self) -> list[str]:
        return list(self._kinds)

    def kinds(self) -> list[ProviderKind[Any]]:
        return list(self._kinds.values())

    def get(self, name: object) -> ProviderKind[Any]:
        """The entry named `name`; UnknownKind otherwise."""
        if not isinstance(name, str) or name not in self._kinds:
            raise UnknownKind(name, self._kinds)
        return self._kinds[name]

    def of(self, config: ProviderConfig) -> ProviderKind[Any]:
        """The entry `config` belongs to (its kind's, and of that kind's config model)."""
        entry = self.get(config.kind)
        if not isinstance(config, entry.config_model):
            raise TypeError(f"{type(config).__name__} is not a config of kind {entry.kind!r}")
        return entry

    def secret_fields(self, config: ProviderConfig) -> tuple[str, ...]:
        """The names of the secret fields of `config`'s kind."""
        return self._secrets[self.of(config).kind]

    async def open(self, config: ProviderConfig, context: ProviderContext) -> EmbeddingProvider:
        return await self.of(config).open(config, context)

    def declared_space(self, config: ProviderConfig) -> EmbeddingSpace | None:
        """Blocking (a local kind reads the model's files): call it in a thread."""
        return self.of(config).declared_space(config)

    def check(self, config: ProviderConfig, context: ProviderContext) -> None:
        self.of(config).check(config, context)


_BUILTIN: list[ProviderKind[Any]] = [local.KIND, openai.KIND]

REGISTRY = ProviderRegistry(_BUILTIN)


def register(kind: ProviderKind[Any]) -> ProviderKind[Any]:
    """Add a kind to the registry every AIConfig validates against."""
    return REGISTRY.register(kind)
