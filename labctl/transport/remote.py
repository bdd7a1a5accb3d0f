"""A command left running in a guest over one paramiko channel."""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from labctl.transport.interface import TIMEOUT_EXIT, CommandFailed, Result

CHUNK = 65536


def drain(recv: Any, sink: bytearray) -> None:
    """A stream read to its end in a helper thread. The thread that waits
    for the command reports how it ended: a channel closed under this one (a
    Ctrl-C shuts every SSH socket) must not print a traceback here."""
    try:
        while data := recv(CHUNK):
            sink.extend(data)
    except Exception:
        return


class ChannelProcess:
    """A command running in a guest: write its stdin, read its stdout as it
    comes; stderr is drained in the background (a full stream would stall it)."""

    def __init__(self, host: str, command: str, chan: Any) -> None:
        self.host = host
        self.command = command
        self._chan = chan
        self._err = bytearray()
        self._buffer = b""
        self._stderr = threading.Thread(
            target=drain, args=(chan.recv_stderr, self._err), daemon=True
        )
        self._stderr.start()

    def write(self, data: bytes) -> None:
        self._chan.sendall(data)

    def close_stdin(self) -> None:
        self._chan.shutdown_write()

    def read(self, size: int = CHUNK) -> bytes:
        """Up to `size` bytes of stdout; b"" at its end."""
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return bytes(self._chan.recv(size))

    def read_until(self, marker: bytes, timeout: float = 60.0) -> bytes:
        """stdout up to and including `marker`; ConnectError-free: a process that
        ends first, or a timeout, raises CommandFailed with what it said."""
        deadline = time.monotonic() + timeout
        data = self._buffer
        self._buffer = b""
        while marker not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandFailed(self._result(124, data, timed_out=True), "no answer in time")
            self._chan.settimeout(remaining)
            try:
                chunk = self._chan.recv(CHUNK)
            except TimeoutError:
                continue
            finally:
                self._chan.settimeout(None)
            if not chunk:
                raise CommandFailed(self.wait(), "ended early")
            data += chunk
        end = data.index(marker) + len(marker)
        self._buffer = data[end:]
        return data[:end]

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the exit; the Result holds the stderr and unread stdout."""
        finished = self._chan.status_event.wait(timeout)
        rest = bytearray(self._buffer)
        self._buffer = b""
        if finished:
            drain(self._chan.recv, rest)
            self._stderr.join()
        code = self._chan.recv_exit_status() if finished else TIMEOUT_EXIT
        self._chan.close()
        return self._result(code, bytes(rest), timed_out=not finished)

    def kill(self) -> None:
        """Close the channel; the command gets EOF/SIGPIPE (a SQL session ends,
        and its locks with it)."""
        self._chan.close()

    def _result(self, code: int, out: bytes, timed_out: bool = False) -> Result:
        return Result(
            self.host,
            self.command,
            code,
            out.decode(errors="replace"),
            bytes(self._err).decode(errors="replace"),
            timed_out=timed_out,
        )


def feed(chan: Any, stdin: bytes | IO[bytes]) -> None:
    """A command's input sent from a helper thread. It may end early: the
    command exits without reading all of it, the channel is closed by a
    Ctrl-C, or the caller, interrupted, closes the file being sent (a
    ValueError); the thread that waits for the command says what happened."""
    try:
        if isinstance(stdin, (bytes, bytearray)):
            chan.sendall(stdin)
        else:
            for block in iter(lambda: stdin.read(CHUNK), b""):
                chan.sendall(block)
        chan.shutdown_write()
    except Exception:
        return
