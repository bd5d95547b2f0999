"""The ONNX exports of the packaged model, made once per test session (an export takes tens
of seconds): `onnx_models` is their cache directory, `seed_models` links them into a data
dir's model cache so a stack opened there finds them already exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecpipe.providers.local_backend import exported
from vecpipe.providers.local_model import DEFAULT_MODEL, resolve_model_path

ONNX_BACKENDS = ("onnx", "onnx-int8")


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("onnx-models")
    source = resolve_model_path(DEFAULT_MODEL)
    for backend in ONNX_BACKENDS:
        exported(source, DEFAULT_MODEL, backend, cache)
    return cache


def seed_models(cache: Path, data_dir: Path) -> Path:
    """`data_dir`/models holding links to the session's exports; returns that directory."""
    models = data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for entry in cache.iterdir():
        if entry.is_dir() and not entry.name.startswith("."):
            (models / entry.name).symlink_to(entry, target_is_directory=True)
    return models
