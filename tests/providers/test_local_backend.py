"""The local backends' choices and the export cache, without a model (providers/local_backend.py).

The export itself is faked here (`_export` writes a file): what is tested is the cache's
contract — exported once, found again, never seen half-written, one exporter at a time.
The real export runs in test_local_onnx.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from vecpipe.errors import ConfigError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers import local_backend
from vecpipe.providers.config import AIConfig
from vecpipe.providers.kinds.local import LocalProviderConfig, declared_local_space
from vecpipe.providers.local_backend import (
    QUANTIZATION_CONFIGS,
    backend_options,
    exported,
    quantization_config,
)

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    directory = tmp_path / "source-model"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


class FakeExport:
    """Stands in for sentence-transformers' export: counts calls, may be slow or fail."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, source: Path, work: Path, backend: str, config: str, name: str) -> None:
        with self._lock:
            self.calls += 1
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(b"half")
        time.sleep(self.seconds)
        if self.fail:
            raise ConfigError("export failed")
        (work / name).write_bytes(b"onnx")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeExport]:
    export = FakeExport()
    monkeypatch.setattr(local_backend, "_export", export)
    yield export


def test_the_quantization_config_suits_this_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert quantization_config() in QUANTIZATION_CONFIGS
    cases = [
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni"),
        ("x86_64", {"avx2", "avx512f"}, "avx512"),
        ("x86_64", {"avx2"}, "avx2"),
        ("aarch64", set(), "arm64"),
    ]
    try:
        for machine, flags, expected in cases:
            monkeypatch.setattr(local_backend.platform, "machine", lambda m=machine: m)
            monkeypatch.setattr(local_backend, "_cpu_flags", lambda f=flags: frozenset(f))
            quantization_config.cache_clear()
            assert quantization_config() == expected
    finally:
        monkeypatch.undo()
        quantization_config.cache_clear()


def test_only_int8_changes_the_space() -> None:
    assert backend_options("torch") == {} == backend_options("onnx")
    assert backend_options("onnx-int8") == {
        "backend": "onnx-int8",
        "quantization": quantization_config(),
    }
    with pytest.raises(ConfigError, match="unknown local backend"):
        backend_options("cuda")


def test_declared_spaces_per_backend() -> None:
    def space(**options: object) -> EmbeddingSpace | None:
        return declared_local_space(LocalProviderConfig.model_validate({"model": MODEL, **options}))

    torch = space()
    assert torch is not None and torch.variant == ""
    assert space(backend="torch") == torch
    assert space(backend="onnx") == torch  # the same vectors: the same space
    int8 = space(backend="onnx-int8")
    assert int8 is not None and int8 != torch and int8.variant
    # with a text format too: a space of its own, unlike either alone
    both = space(backend="onnx-int8", chunk_tokens=128)
    assert both not in (int8, space(chunk_tokens=128))
    assert space(backend="onnx", chunk_tokens=128) == space(chunk_tokens=128)


def test_the_default_backend_is_torch() -> None:
    assert LocalProviderConfig().backend == "torch"
    config = AIConfig.model_validate({"primary": {"kind": "local"}})
    assert config.primary.backend == "torch"  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["cuda", "ONNX", "", 8, None])
def test_a_bad_backend_is_refused(value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        AIConfig.model_validate({"primary": {"kind": "local", "backend": value}})
    assert "backend" in str(raised.value)


def test_exported_once_then_found(tmp_path: Path, source: Path, fake: FakeExport) -> None:
    first = exported(source, MODEL, "onnx-int8", tmp_path / "models")
    assert fake.calls == 1
    assert (first.directory / first.file_name).read_bytes() == b"onnx"
    assert first.file_name == f"onnx/model_qint8_{quantization_config()}.onnx"
    assert quantization_config() in first.directory.name
    again = exported(source, MODEL, "onnx-int8", tmp_path / "models")
    assert again == first and fake.calls == 1  # the cache, not a second export
    fp32 = exported(source, MODEL, "onnx", tmp_path / "models")
    assert fp32.directory != first.directory and fp32.file_name == "onnx/model.onnx"
    assert fake.calls == 2
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == sorted([".export.lock", first.directory.name, fp32.directory.name])


def test_a_changed_source_exports_again(tmp_path: Path, source: Path, fake: FakeExport) -> None:
    first = exported(source, MODEL, "onnx", tmp_path / "models")
    (source / "model.safetensors").write_bytes(b"other weights")
    second = exported(source, MODEL, "onnx", tmp_path / "models")
    assert second.directory != first.directory and fake.calls == 2


def test_concurrent_first_use_exports_once(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = FakeExport(seconds=0.3)
    monkeypatch.setattr(local_backend, "_export", slow)
    results = []

    def use() -> None:
        results.append(exported(source, MODEL, "onnx-int8", tmp_path / "models"))

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slow.calls == 1
    assert len(set(results)) == 1 and len(results) == 4
    assert (results[0].directory / results[0].file_name).read_bytes() == b"onnx"


def test_a_failed_export_leaves_nothing(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_backend, "_export", FakeExport(fail=True))
    with pytest.raises(ConfigError, match="export failed"):
        exported(source, MODEL, "onnx", tmp_path / "models")
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".export.lock"]


def test_a_killed_export_is_cleared_and_redone(
    tmp_path: Path, source: Path, fake: FakeExport
) -> None:
    cache = tmp_path / "models"
    done = exported(source, MODEL, "onnx", cache)
    # what a SIGKILL mid-export leaves: a temporary dir, and no marker in a target
    leftover = cache / f".{done.directory.name}.x1y2"
    leftover.mkdir()
    (done.directory / local_backend._COMPLETE).unlink()
    again = exported(source, MODEL, "onnx", cache)
    assert again == done and fake.calls == 2
    assert not leftover.exists() and (done.directory / local_backend._COMPLETE).is_file()


def test_onnx_needs_a_cache_dir(source: Path, fake: FakeExport) -> None:
    with pytest.raises(ConfigError, match="cache directory"):
        exported(source, MODEL, "onnx", None)
    with pytest.raises(ValueError, match="torch"):
        exported(source, MODEL, "torch", Path("/nonexistent"))
    assert fake.calls == 0


def test_the_quantizers_per_node_lines_are_dropped_during_an_export_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quantizer = "/site-packages/onnxruntime/quantization/operators/matmul.py"

    def log_from(pathname: str) -> None:
        record = logging.LogRecord("root", logging.INFO, pathname, 1, "Quantizing %s", ("n",), None)
        logging.getLogger().handle(record)

    with caplog.at_level(logging.INFO):
        with local_backend._quiet_quantizer():
            log_from(quantizer)
            log_from("/srv/app/other.py")
        log_from(quantizer)
    assert [r.pathname for r in caplog.records] == ["/srv/app/other.py", quantizer]
