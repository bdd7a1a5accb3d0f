"""Writing files whole: readers never see half a file, writers never collide
(and, for what must be done by one process at a time, a lock to wait for)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write `path` through a private temporary file in the same folder, then
    rename it over; the mode is set before a byte is written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NotRegular(OSError):
    """A path that names something other than a regular file (a FIFO, a device)."""


def read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path` (one byte more
    tells a caller the file is larger). The open never blocks, so a FIFO or a
    device is refused (NotRegular) before a byte is read; a NUL in the path is
    ValueError, as os.open raises it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(0, "not a regular file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# How often a waiter tries a held lock again: short, as the holder of the
# one lock this is for (inventory's asker) is done in about a second.
LOCK_POLL = 0.02


@contextlib.contextmanager
def exclusive(path: Path, timeout: float, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing), waiting up to
    `timeout` seconds for it; busy() is raised when it stays held that long.

    Polled: a blocking flock cannot be given a time limit."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    raise busy() from None
                time.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # lets the lock go too
