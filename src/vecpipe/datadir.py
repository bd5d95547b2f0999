"""One owner per data dir: an exclusive lock taken before anything under the dir is opened.

Qdrant Edge allows one open shard per directory, but a second `EdgeShard.load` touches the
segment files before it fails on the WAL lock, and that corrupted live shards (issue 12).
SQLite files there (the queue, the default database) would also get two writers whose work
neither expects. So the process that opens a data dir first takes `data_dir/vecpipe.lock`
with `flock(LOCK_EX | LOCK_NB)` and holds it for the life of its resource stack; every other
opener fails at once with `StoreLocked`, before it has touched a file, naming the holder.

Why flock: the kernel drops it when the holder dies, however it dies (SIGKILL, OOM, power
loss leaves no process), so there is nothing stale to clean up. It belongs to the open file
description, so a second open in the same process is refused too; and the descriptor is
opened close-on-exec, so a child (the Edge optimizer) never inherits it and can never keep
the lock after its parent is gone. The file itself is never deleted (unlinking a lock file
races with the next opener); its content is only a note for the next opener's message: the
holder's pid, command and, for `vecpipe serve`, the URL to ask instead.

Leaf module: standard library and vecpipe.errors only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vecpipe.errors import ConfigError, StoreLocked

LOCK_NAME = "vecpipe.lock"
_NOTE_MAX_BYTES = 4096
_NOTE_READ_TRIES = 5  # the holder writes its note just after locking: a reader may be early


@dataclass(frozen=True)
class Holder:
    """What a lock's holder wrote about itself (any field may be missing)."""

    pid: int | None = None
    command: str | None = None
    url: str | None = None


class DataDirLock:
    """The held lock on one data dir; `release()` (or leaving the `with`) gives it back."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the note described a holder that is leaving
        os.close(fd)  # closing the last descriptor of the description drops the flock

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DataDirLock({str(self.path)!r}, held={self.held})"


def acquire(data_dir: Path, *, url: str | None = None) -> DataDirLock:
    """Lock `data_dir` for this process, or raise StoreLocked naming the holder.

    Creates the dir (and the lock file) if missing. `url` is where this process serves its
    API, written down for the message a second opener gets.
    """
    path = Path(data_dir) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the data dir lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_note(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
        os.close(fd)
        if holder is None:
            raise ConfigError(f"cannot lock the data dir {data_dir}: {exc.strerror}") from None
        raise StoreLocked(locked_message(Path(data_dir), holder), holder.pid) from None
    _write_note(fd, url)
    return DataDirLock(path, fd)


@contextlib.contextmanager
def held(data_dir: Path, *, url: str | None = None) -> Iterator[DataDirLock]:
    """`acquire` as a context manager: the lock is released when the block ends."""
    lock = acquire(data_dir, url=url)
    try:
        yield lock
    finally:
        lock.release()


def holder_of(data_dir: Path) -> Holder | None:
    """Who holds `data_dir`'s lock now, or None when no process does.

    It looks by trying the lock for an instant: an opener starting at that very instant is
    refused, and this caller, which goes on to open, becomes the one owner instead."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # none yet, or unreadable: `acquire` says why when it matters
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_note(fd)
    finally:
        os.close(fd)  # a lock taken here to look is dropped with it
    return None


def check_free(data_dir: Path) -> None:
    """Raise StoreLocked now if another process holds `data_dir`, before a slow start (a
    model load, a port bind) would only fail later; the lock itself is taken at open."""
    holder = holder_of(data_dir)
    if holder is not None:
        raise StoreLocked(locked_message(Path(data_dir), holder), holder.pid)


def sqlite_file(database_url: str) -> Path | None:
    """The file a `sqlite…:///path` URL names (None for other engines and in-memory ones)."""
    scheme, sep, rest = database_url.partition(":///")
    if not sep or scheme.split("+", 1)[0] != "sqlite":
        return None
    name = rest.split("?", 1)[0]
    if not name or name == ":memory:" or name.startswith("file::memory:"):
        return None
    return Path(name if name.startswith("/") else f"./{name}").resolve()


def is_under(path: Path | None, data_dir: Path) -> bool:
    return path is not None and path.resolve().is_relative_to(Path(data_dir).resolve())


def serving_url(host: str, port: int) -> str:
    """The URL a process on this machine reaches a server bound to `host:port` at (a
    wildcard bind is reached on loopback)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}"


def locked_message(data_dir: Path, holder: Holder) -> str:
    who = "another process" if holder.pid is None else f"process {holder.pid}"
    if holder.command:
        who += f" ({holder.command})"
    ask = holder.url or "http://HOST:PORT"
    return (
        f"the data dir {data_dir} is in use by {who}, and one process at a time may open it: "
        f"ask that server instead (--url {ask} or VECPIPE_URL, or its HTTP API), "
        "or stop it first"
    )


def _write_note(fd: int, url: str | None) -> None:
    note = {"pid": os.getpid(), "command": _command(), "url": url}
    data = (json.dumps(note) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # the note is for messages only; the flock is what excludes


def _read_note(fd: int) -> Holder:
    for attempt in range(_NOTE_READ_TRIES):
        try:
            raw = os.pread(fd, _NOTE_MAX_BYTES, 0)
        except OSError:
            return Holder()
        if raw.strip():
            return _parse_note(raw)
        if attempt + 1 < _NOTE_READ_TRIES:
            time.sleep(0.01)
    return Holder()


def _parse_note(raw: bytes) -> Holder:
    try:
        note = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return Holder()
    if not isinstance(note, dict):
        return Holder()
    pid, command, url = note.get("pid"), note.get("command"), note.get("url")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        command=command if isinstance(command, str) else None,
        url=url if isinstance(url, str) else None,
    )


def _command() -> str:
    """`vecpipe serve`, `vecpipe worker`…, or the script's name for a library user."""
    script = Path(sys.argv[0])
    if script.name == "vecpipe" or (script.name == "__main__.py" and script.parent.name == "cli"):
        verb = next((word for word in sys.argv[1:] if not word.startswith("-")), "")
        return f"vecpipe {verb}".strip()
    return script.name if script.name not in ("", "-c") else "python"
