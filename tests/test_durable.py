"""durable.py: the fsync helpers the WAL sync and the model cache rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vecpipe import durable


def synced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync is called on from durable.py, in order."""
    paths: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(durable.os, "fsync", spy)
    return paths


def test_every_file_then_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("open-1", "open-2", "first-index"):
        (tmp_path / name).write_bytes(b"x")
    paths = synced_paths(monkeypatch)
    durable.fsync_directory_files(tmp_path)
    assert sorted(paths[:-1]) == sorted(
        str(tmp_path / n) for n in ("open-1", "open-2", "first-index")
    )
    assert paths[-1] == str(tmp_path)


def test_a_file_renamed_during_the_sync_is_synced_under_its_new_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAL closing its segment renames open-N to closed-N: whichever name the sync meets
    first, the file's bytes are synced."""
    (tmp_path / "a-first").write_bytes(b"x")
    (tmp_path / "open-1").write_bytes(b"entries")
    paths = synced_paths(monkeypatch)
    fsync_path = durable.fsync_path

    def renaming(path: Path | str) -> None:
        if Path(path).name == "a-first":
            os.rename(tmp_path / "open-1", tmp_path / "closed-1")
        fsync_path(path)

    monkeypatch.setattr(durable, "fsync_path", renaming)
    durable.fsync_directory_files(tmp_path)
    assert str(tmp_path / "closed-1") in paths
    assert paths[-1] == str(tmp_path)


def test_a_tree_is_synced_files_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.onnx").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    paths = synced_paths(monkeypatch)
    durable.fsync_tree(tmp_path)
    expected = {str(tmp_path), str(tmp_path / "sub")}
    expected |= {str(tmp_path / "sub" / "model.onnx"), str(tmp_path / "config.json")}
    assert set(paths) == expected
