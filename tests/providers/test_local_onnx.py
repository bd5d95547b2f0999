"""The ONNX backends on the real all-MiniLM-L6-v2, exported once per session (onnx_models)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from vecpipe.errors import ConfigError
from vecpipe.providers import local_backend, local_model
from vecpipe.providers.kind import ProviderContext
from vecpipe.providers.kinds.local import LocalProviderConfig, open_local
from vecpipe.providers.local import LocalProvider
from vecpipe.providers.local_model import load_model
from vecpipe.settings import Settings

pytestmark = pytest.mark.slow

TEXTS = [
    "How do I reset my password?",
    "What are the steps to change a forgotten password?",
    "The stock market closed higher on Friday.",
    "Debian uses apt to install, upgrade and remove packages from its archive. " * 6,
    "A kernel module can be loaded at boot by listing it in /etc/modules.",
]


@pytest.fixture
async def providers(onnx_models: Path) -> AsyncIterator[dict[str, LocalProvider]]:
    opened: dict[str, LocalProvider] = {}
    try:
        for backend in ("torch", "onnx", "onnx-int8"):
            opened[backend] = await LocalProvider.open(backend=backend, models_dir=onnx_models)
        yield opened
    finally:
        for provider in opened.values():
            await provider.aclose()


async def test_each_backend_is_selected(providers: dict[str, LocalProvider]) -> None:
    for backend, provider in providers.items():
        assert provider._loaded.backend == backend
        assert backend in repr(provider)
        assert provider.max_tokens == 254 and provider.input_limit == 256
    model = providers["onnx-int8"].sentence_model
    assert model.backend == "onnx"  # sentence-transformers' ONNX module, not torch
    assert "qint8" in str(model[0].auto_model.path)


async def test_onnx_gives_the_torch_vectors_and_space(
    providers: dict[str, LocalProvider],
) -> None:
    vectors = {b: np.array(await p.embed(TEXTS)) for b, p in providers.items()}
    queries = {b: np.array(await p.embed(TEXTS[:2], purpose="query")) for b, p in providers.items()}
    onnx = (vectors["onnx"] * vectors["torch"]).sum(axis=1)
    assert onnx.min() >= 0.9999  # the rule for sharing a space (bench/README.md §10)
    assert providers["onnx"].space == providers["torch"].space
    int8 = (vectors["onnx-int8"] * vectors["torch"]).sum(axis=1)
    assert 0.95 < int8.min() < 0.9999  # close, but not the same vectors...
    assert providers["onnx-int8"].space != providers["torch"].space  # ...so not the same space
    assert providers["onnx-int8"].space.model == providers["torch"].space.model
    for backend in providers:
        assert np.allclose(np.linalg.norm(vectors[backend], axis=1), 1.0, atol=1e-4)
        # int8's activations are quantized per batch (dynamic quantization): a text's
        # vector moves a little with the texts it is batched with
        same = (queries[backend] * vectors[backend][:2]).sum(axis=1)
        assert same.min() >= (0.99 if backend == "onnx-int8" else 0.99999)
        query, paraphrase, unrelated = vectors[backend][:3]
        assert query @ paraphrase > query @ unrelated + 0.2


def test_a_second_start_loads_the_export_without_exporting(
    onnx_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(local_model, "_models", {})  # a new process' view: nothing loaded
    monkeypatch.setattr(local_backend, "_export", no_export)
    loaded = load_model("all-MiniLM-L6-v2", "onnx-int8", cache_dir=onnx_models)
    assert loaded.backend == "onnx-int8" and loaded.dimension == 384
    assert str(loaded.model[0].auto_model.path).startswith(str(onnx_models))


def test_no_cache_dir_no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_models", {})
    with pytest.raises(ConfigError, match="cache directory"):
        load_model("all-MiniLM-L6-v2", "onnx")


@pytest.mark.parametrize(
    ("backend", "setting", "expected"),
    [
        ("onnx-int8", None, 2048),
        ("onnx", None, 2048),
        ("torch", None, 512),
        ("onnx-int8", 300, 300),
    ],
)
async def test_each_backend_batches_by_its_own_budget_unless_the_operator_sets_one(
    onnx_models: Path, tmp_path: Path, backend: str, setting: int | None, expected: int
) -> None:
    settings = Settings(data_dir=tmp_path / "data", local_batch_tokens=setting)
    context = dataclasses.replace(ProviderContext.from_settings(settings), models_dir=onnx_models)
    provider = await open_local(LocalProviderConfig(backend=backend), context)  # type: ignore[arg-type]
    try:
        assert isinstance(provider, LocalProvider)
        assert provider.batch_tokens == expected
    finally:
        await provider.aclose()
