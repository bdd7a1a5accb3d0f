"""How labctl runs things in a guest: the interface every backend keeps (the
SSH one, the tests' fake). Ops and roles depend on this module only.

`command_line` quotes every word with shlex.join, here and nowhere else, so an
ID, a reference or a path from the user never reaches a shell unquoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from labctl.errors import ExitCode, GuestError

TIMEOUT_EXIT = 124
REMOTE_KILL_GRACE = 5  # seconds between timeout(1)'s TERM and its KILL


@dataclass(frozen=True)
class Result:
    """What one command in one guest did."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int = 0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandFailed(GuestError):
    """A guest command exited non-zero; carries its Result."""

    def __init__(self, result: Result, what: str | None = None) -> None:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = detail[-1] if detail else f"exit status {result.exit_code}"
        if result.timed_out:
            reason = "no answer within its time limit (--timeout, LABCTL_SSH_TIMEOUT)"
            self.exit_code = ExitCode.TIMEOUT
        super().__init__(f"{result.host}: {what or result.command}: {reason}")
        self.result = result


def command_line(argv: Sequence[str], sudo: bool = False, timeout: float | None = None) -> str:
    """The shell line for `argv`, each word quoted; sudo -n so it never prompts;
    timeout(1) inside sudo, so that it can stop a root command."""
    words = list(argv)
    if timeout is not None:
        words = ["timeout", "-k", str(REMOTE_KILL_GRACE), f"{timeout:g}", *words]
    if sudo:
        words = ["sudo", "-n", "-H", "--", *words]
    return shlex.join(words)


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open an SSH session to one machine."""

    name: str
    host: str
    port: int
    user: str
    key_file: str
    machine_id: str = ""


class RemoteProcess(Protocol):
    """A command left running in a guest: a session to talk to (a SQL client
    holding a lock), or a stream to pipe (a dump)."""

    host: str
    command: str

    def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def read(self, size: int = 65536) -> bytes: ...

    def read_until(self, marker: bytes, timeout: float = 60.0) -> bytes: ...

    def wait(self, timeout: float | None = None) -> Result: ...

    def kill(self) -> None: ...


class Transport(Protocol):
    """One guest: commands run, files written, processes started."""

    name: str
    endpoint: Endpoint  # where it was reached

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = False,
        timeout: float | None = None,
        stdin: bytes | IO[bytes] | None = None,
        hold_stdin: bool = False,
    ) -> Result: ...

    def put(
        self,
        data: bytes | Path,
        remote: str,
        mode: int = 0o644,
        sudo: bool = False,
        owner: str | None = None,
    ) -> None: ...

    def start(self, argv: Sequence[str], *, sudo: bool = False) -> RemoteProcess: ...

    def open_channel(self) -> Any:
        """A raw channel for an interactive terminal (the SSH backend's own)."""

    def close(self) -> None: ...
