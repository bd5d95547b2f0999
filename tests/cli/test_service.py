"""`vecpipe serve` and `vecpipe worker` refuse what cannot work with one line and exit 2,
before anything slow: nonsense settings, a data dir they cannot use, a port in use.

Each case runs the real command as a subprocess. "Before the model loads" is shown by time:
every refusal comes back within seconds (the Python imports), where serve's model load
alone takes longer; the test bound is loose for a loaded box, the figures are in the note.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FAIL_FAST_SECONDS = 30.0  # generous: a loaded 2-CPU box; quiet figures are ~1.5-2.5 s
NONSENSE = [
    ({"VECPIPE_WORKER_BATCH_SIZE": "0"}, "VECPIPE_WORKER_BATCH_SIZE must be at least 1"),
    ({"VECPIPE_WORKER_BATCH_SIZE": "-1"}, "VECPIPE_WORKER_BATCH_SIZE must be at least 1"),
    ({"VECPIPE_LIMIT_MAX_BODY_BYTES": "-5"}, "VECPIPE_LIMIT_MAX_BODY_BYTES must be at least 1"),
    ({"VECPIPE_MAX_ATTEMPTS": "0"}, "VECPIPE_MAX_ATTEMPTS must be at least 1"),
    ({"VECPIPE_PORT": "99999"}, "VECPIPE_PORT must be at most 65535"),
    ({"VECPIPE_ADMIN_TOKEN": ""}, "VECPIPE_ADMIN_TOKEN must be at least 16 characters"),
    ({"VECPIPE_ADMIN_TOKEN": "0123456789"}, "VECPIPE_ADMIN_TOKEN must be at least 16 characters"),
]


def vecpipe(
    args: list[str], env: dict[str, str], *, wrapper: list[str] | None = None
) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of `vecpipe ARGS` with a clean VECPIPE_ env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VECPIPE_")}
    command = [*(wrapper or []), sys.executable, "-m", "vecpipe.cli", *args]
    started = time.monotonic()
    done = subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def assert_one_line(result: tuple[int, str, str, float], says: str) -> None:
    code, stdout, stderr, seconds = result
    assert code == 2, (code, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert says in stderr and "Traceback" not in stderr
    assert stdout == ""
    assert seconds < FAIL_FAST_SECONDS


@pytest.mark.parametrize(("env", "says"), NONSENSE, ids=lambda v: str(v)[:40])
def test_serve_refuses_a_nonsense_setting_in_one_line(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    result = vecpipe(["serve"], {"VECPIPE_DATA_DIR": str(tmp_path / "data"), **env})

    assert_one_line(result, says)
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_worker_and_an_operator_command_refuse_the_same_way(tmp_path: Path) -> None:
    env = {"VECPIPE_DATA_DIR": str(tmp_path / "data")}
    bad_batch = {**env, "VECPIPE_WORKER_BATCH_SIZE": "0"}
    assert_one_line(vecpipe(["worker"], bad_batch), "VECPIPE_WORKER_BATCH_SIZE must be")
    no_attempts = {**env, "VECPIPE_MAX_ATTEMPTS": "0"}
    assert_one_line(vecpipe(["dlq", "list"], no_attempts), "VECPIPE_MAX_ATTEMPTS must be")
    assert_one_line(vecpipe(["status"], {**env, "VECPIPE_PORT": "99999"}), "VECPIPE_PORT")
    flag = vecpipe(["serve", "--port", "70000"], env)
    assert_one_line(flag, "--port must be at most 65535 (got 70000)")


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"VECPIPE_DATA_DIR": str(tmp_path / "data"), "VECPIPE_PORT": str(port)}
        result = vecpipe(["serve"], env)

    assert_one_line(result, f"cannot listen on 127.0.0.1:{port}: the port is in use")


def unprivileged() -> list[str]:
    """A prefix that runs a command without the right to ignore file modes: nothing for a
    normal user; for root, setpriv dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file modes, and setpriv (to drop that right) is missing")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize(("mode", "says"), [(0o000, "permission denied"), (0o555, "permission")])
@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_an_unusable_data_dir_is_one_line(
    tmp_path: Path, mode: int, says: str, command: list[str]
) -> None:
    """Unreadable (000) or read-only (555) for this process."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(mode)
    try:
        result = vecpipe(command, {"VECPIPE_DATA_DIR": str(data_dir)}, wrapper=unprivileged())
    finally:
        data_dir.chmod(0o755)

    assert_one_line(result, f"VECPIPE_DATA_DIR {data_dir} must be a directory this process")
    assert says in result[2]


@contextlib.contextmanager
def read_only_mount(path: Path) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_data_dir_on_a_read_only_filesystem_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only filesystem needs root")
    with read_only_mount(tmp_path / "ro") as data_dir:
        result = vecpipe(["serve"], {"VECPIPE_DATA_DIR": str(data_dir)})

    assert_one_line(result, "read-only file system")
