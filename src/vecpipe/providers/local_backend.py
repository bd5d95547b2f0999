"""Local inference backends: torch (the default), ONNX fp32 and ONNX int8.

The ONNX backends are sentence-transformers' own (`SentenceTransformer(path,
backend="onnx")`, which exports through optimum, and its `export_dynamic_quantized_onnx_model`
helper): nothing here writes an exporter. A model is exported from its files on disk
(offline: local models are never downloaded), once, into the model cache under the data dir
(`<data dir>/models/<model>-<backend>-<config>-<source>/`), on the first load of that backend,
never at import time. The export is written to a temporary directory beside it and renamed
into place, so a reader finds a complete export or none; it runs under an exclusive flock
on the cache (datadir.py's kind of lock), so two processes sharing a cache export once.

Spaces (bench/README.md §10 measures both): ONNX fp32 computes the same function as torch
(cosine to torch >= 0.9999 on real text), so "onnx" shares torch's embedding space and a
tenant may switch between them without re-embedding. int8 vectors are not the fp32 model's,
so "onnx-int8" is a space of its own, and its quantization config (chosen for this CPU: the
instructions ONNX Runtime's int8 kernels use) is part of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from vecpipe.durable import fsync_path, fsync_tree
from vecpipe.errors import ConfigError
from vecpipe.text.hashing import fingerprint

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "OnnxExport",
    "backend_options",
    "default_batch_tokens",
    "exported",
    "quantization_config",
]

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEFAULT_BACKEND: Backend = "torch"
QUANTIZATION_CONFIGS = ("arm64", "avx2", "avx512", "avx512_vnni")  # sentence-transformers'
_COMPLETE = "vecpipe-export.json"  # written last, before the rename: its presence = complete
_LOCK = ".export.lock"


# Padded tokens per forward pass when VECPIPE_LOCAL_BATCH_TOKENS is not set. ONNX Runtime's
# per-call cost weighs more than torch's: through the bulk API on a quiet box (bench/README.md
# §10) onnx-int8 ingested 175.5 records/s at 512 and 254 at 2048 (torch 105.6 / 107.5), onnx
# fp32 110.9 / 131.1. torch keeps 512: its rate does not move, and a search waits behind at
# most one batch.
_BATCH_TOKENS: dict[str, int] = {"torch": 512, "onnx": 2048, "onnx-int8": 2048}


def default_batch_tokens(backend: str) -> int:
    """The padded-token budget of one forward pass for `backend` (see `_BATCH_TOKENS`)."""
    _check(backend)
    return _BATCH_TOKENS[backend]


@cache
def quantization_config() -> str:
    """sentence-transformers' dynamic-quantization config for this CPU: "avx512_vnni" where
    the CPU has VNNI (int8 dot products in one instruction), else "avx512", "avx2", or
    "arm64" on ARM."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    flags = _cpu_flags()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def backend_options(backend: str) -> dict[str, str]:
    """What a backend adds to the embedding space's variant: nothing for torch and ONNX
    fp32 (the same vectors), the backend and its quantization config for int8."""
    _check(backend)
    if backend == "onnx-int8":
        return {"backend": backend, "quantization": quantization_config()}
    return {}


@dataclass(frozen=True)
class OnnxExport:
    """An exported model in the cache: its directory and the ONNX file to load from it."""

    directory: Path
    file_name: str  # relative to `directory`

    def load_kwargs(self, threads: int) -> dict[str, Any]:
        """`SentenceTransformer` keyword arguments that load this export on the CPU."""
        return {
            "backend": "onnx",
            "model_kwargs": {
                "file_name": self.file_name,
                "provider": "CPUExecutionProvider",
                "session_options": _session_options(threads),
            },
        }


def _session_options(threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default, one per core
    options.inter_op_num_threads = 1
    # idle pool threads sleep instead of spinning: on a box shared with other work (and
    # with this process' own chunking and event loop) a spinning thread steals a core
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def exported(source: Path, name: str, backend: str, cache_dir: Path | None) -> OnnxExport:
    """The ONNX export of the model at `source` for `backend`, exported on first use.

    Blocking (an export takes tens of seconds): call it off the event loop."""
    _check(backend)
    if backend == "torch":
        raise ValueError("the torch backend loads the model's own files")
    if cache_dir is None:
        raise ConfigError(f"the {backend} backend needs a model cache directory (the data dir)")
    config = quantization_config() if backend == "onnx-int8" else "fp32"
    file_name = f"onnx/model_qint8_{config}.onnx" if backend == "onnx-int8" else "onnx/model.onnx"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:64]
    target = cache_dir / f"{slug}-{backend}-{config}-{_source_id(source)}"
    result = OnnxExport(target, file_name)
    if (target / _COMPLETE).is_file():
        return result
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the model cache {cache_dir}: {exc.strerror}") from None
    with _export_lock(cache_dir):
        if (target / _COMPLETE).is_file():  # exported by the holder we waited for
            return result
        _clear_leftovers(cache_dir, target)
        logger.info("exporting local model %s for the %s backend (%s)", name, backend, config)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
        try:
            _export(source, work, backend, config, file_name)
            (work / _COMPLETE).write_text(
                json.dumps({"source": str(source), "backend": backend, "config": config})
            )
            fsync_tree(work)
            os.rename(work, target)
            fsync_path(cache_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    logger.info("exported local model %s to %s", name, target)
    return result


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown local backend {backend!r}: one of {', '.join(BACKENDS)}")


def _source_id(source: Path) -> str:
    """Which files the export came from: a reinstalled or changed model exports again."""
    entries = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in source.iterdir() if p.is_file()
    )
    return fingerprint([str(source), entries])[:10]


@contextlib.contextmanager
def _export_lock(cache_dir: Path) -> Iterator[None]:
    """One exporter per cache at a time, across processes; the kernel drops it on death."""
    fd = os.open(cache_dir / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _clear_leftovers(cache_dir: Path, target: Path) -> None:
    """An export killed half-way (its temporary dir), or a target without its marker."""
    for stale in cache_dir.glob(f".{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)


def _export(source: Path, work: Path, backend: str, config: str, file_name: str) -> None:
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    model: Any = None
    try:
        model = SentenceTransformer(
            str(source), device="cpu", backend="onnx", local_files_only=True
        )
        model.save(str(work))  # the model's config, tokenizer and onnx/model.onnx
        if backend == "onnx-int8":
            with _quiet_quantizer():
                export_dynamic_quantized_onnx_model(model, config, str(work))
            (work / "onnx" / "model.onnx").unlink()  # the fp32 file is not needed here
    except Exception as exc:
        raise ConfigError(
            f"cannot export local model {source.name} for the {backend} backend: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        _remove_export_tempdir(model)
    if not (work / file_name).is_file():
        raise ConfigError(f"exporting {source.name} for {backend} did not write {file_name}")


def _from_quantizer(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname or "quantization" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a line per node on the root logger (hundreds of INFO
    lines in the operator's log for one export): dropped while it runs."""
    root = logging.getLogger()
    root.addFilter(_from_quantizer)
    try:
        yield
    finally:
        root.removeFilter(_from_quantizer)


def _remove_export_tempdir(model: Any) -> None:
    """optimum exports into a TemporaryDirectory the model object keeps; removed now, not
    whenever the garbage collector finds it (a ResourceWarning, and 90 MB in /tmp until)."""
    try:
        tempdir = model[0].auto_model._model_save_dir_tempdirectory_instance
    except (TypeError, IndexError, AttributeError):
        return
    if tempdir is not None:
        tempdir.cleanup()
