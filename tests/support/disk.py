"""A small file system of its own for a test, and a ballast file that fills it.

`small_disk` mounts a tmpfs of 160 MiB under the test's tmp dir (root only: CI runs as root;
elsewhere the test is skipped with the reason) and unmounts it afterwards. `Disk.fill(leave)`
grows a ballast file until `leave` bytes are free; `Disk.clear()` deletes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MIB = 1024 * 1024
_CHUNK = b"\xa5" * MIB


class Disk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.ballast = path / "ballast"

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int) -> None:
        """Grow the ballast until `leave` bytes (rounded to the page) are free."""
        with self.ballast.open("ab") as ballast:
            while (gap := self.free() - leave) > 0:
                ballast.write(_CHUNK[: min(gap, MIB)])
                ballast.flush()
        assert self.free() <= max(leave, 0) + 4096, f"{self.free()} bytes still free"

    def clear(self) -> None:
        self.ballast.unlink(missing_ok=True)


SIZE_MIB = 160


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    """A tmpfs of SIZE_MIB at tmp_path/disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full disk needs root (CI runs as root)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    path = tmp_path / "disk"
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield Disk(path)
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)  # a process still in it
