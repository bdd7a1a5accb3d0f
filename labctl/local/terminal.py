"""An interactive terminal in a guest: a PTY over a paramiko channel.

The local terminal goes raw for the session; its size is sent at the start
and again on every SIGWINCH, so full-screen programs draw correctly.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
from collections.abc import Iterator
from typing import Any


def _size() -> tuple[int, int]:
    cols, rows = shutil.get_terminal_size((80, 24))
    return cols, rows


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def interact(chan: Any, command: str | None) -> int:
    """Attach this terminal to `chan` running `command` (a login shell if None)."""
    cols, rows = _size()
    chan.get_pty(term=os.environ.get("TERM", "xterm"), width=cols, height=rows)
    if command is None:
        chan.invoke_shell()
    else:
        chan.exec_command(command)

    def resize(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):
            chan.resize_pty(*_size())

    previous = signal.signal(signal.SIGWINCH, resize)
    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    try:
        with _raw(stdin):
            stdin_open = True
            while True:
                watch = [chan, stdin] if stdin_open else [chan]
                try:
                    ready, _, _ = select.select(watch, [], [], 0.5)
                except InterruptedError:
                    continue
                if chan in ready:
                    data = chan.recv(32768)
                    if not data:
                        break
                    os.write(stdout, data)
                if stdin in ready:
                    data = os.read(stdin, 4096)
                    if data:
                        chan.sendall(data)
                    else:
                        stdin_open = False
                        chan.shutdown_write()
                if chan.exit_status_ready() and not chan.recv_ready():
                    break
    finally:
        signal.signal(signal.SIGWINCH, previous)
    return int(chan.recv_exit_status())
