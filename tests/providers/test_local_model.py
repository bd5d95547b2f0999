"""A local model's space from its files, without loading it (`declared_space`)."""

from __future__ import annotations

import json
from pathlib import Path

from vecpipe.models import EmbeddingSpace
from vecpipe.providers.local_model import (
    DEFAULT_MODEL,
    declared_dimension,
    declared_space,
    load_model,
    resolve_model_path,
)

TRANSFORMER = {
    "idx": 0,
    "name": "0",
    "path": "",
    "type": "sentence_transformers.models.Transformer",
}


def _model_dir(root: Path, modules: list[dict[str, object]], configs: dict[str, object]) -> Path:
    root.mkdir()
    (root / "modules.json").write_text(json.dumps(modules))
    for sub, config in configs.items():
        (root / sub).mkdir()
        (root / sub / "config.json").write_text(json.dumps(config))
    return root


def _module(idx: int, kind: str, path: str) -> dict[str, object]:
    return {
        "idx": idx,
        "name": str(idx),
        "path": path,
        "type": f"sentence_transformers.models.{kind}",
    }


def test_the_bundled_model_declares_the_dimension_it_loads_with() -> None:
    path = resolve_model_path(DEFAULT_MODEL)
    assert declared_dimension(path) == load_model(DEFAULT_MODEL).dimension == 384
    assert declared_space(f"sentence-transformers/{DEFAULT_MODEL}") == EmbeddingSpace(
        DEFAULT_MODEL, 384
    )


def test_pooling_modes_multiply_and_a_dense_layer_replaces_the_dimension(tmp_path: Path) -> None:
    pooling = {
        "word_embedding_dimension": 256,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": True,
    }
    two_modes = _model_dir(
        tmp_path / "a", [TRANSFORMER, _module(1, "Pooling", "1_Pooling")], {"1_Pooling": pooling}
    )
    assert declared_dimension(two_modes) == 512
    dense = _model_dir(
        tmp_path / "b",
        [TRANSFORMER, _module(1, "Pooling", "1_Pooling"), _module(2, "Dense", "2_Dense")],
        {"1_Pooling": pooling, "2_Dense": {"in_features": 512, "out_features": 128}},
    )
    assert declared_dimension(dense) == 128
    assert declared_space(str(dense)) == EmbeddingSpace(str(dense), 128)


def test_files_it_cannot_read_declare_nothing(tmp_path: Path) -> None:
    unknown = _model_dir(tmp_path / "a", [TRANSFORMER, _module(1, "LSTM", "1_LSTM")], {})
    assert declared_dimension(unknown) is None
    assert declared_dimension(tmp_path / "missing") is None
    broken = _model_dir(tmp_path / "b", [_module(0, "Pooling", "1_Pooling")], {"1_Pooling": {}})
    assert declared_dimension(broken) is None
    assert declared_space("no-such-model-anywhere") is None
