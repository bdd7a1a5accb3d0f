"""Commands in guests on the user's behalf: `labctl ssh`, `labctl exec`, terminals."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from labctl.errors import SpecError
from labctl.lab.home import LabHome
from labctl.ops.rows import row_of
from labctl.session.group import LabSession, Outcome
from labctl.transport.interface import Result, command_line


def _one_machine(session: LabSession, machines: Sequence[str]) -> str:
    chosen = session.select(machines) if machines else session.running()
    if not chosen:
        raise SpecError(
            f"no machine of lab {session.name!r} is running", hint=f"labctl up {session.name}"
        )
    if len(chosen) != 1:
        raise SpecError(f"pick one machine with --vm (running: {', '.join(chosen)})")
    return chosen[0]


def terminal(
    home: LabHome,
    lab: str | None,
    machines: Sequence[str],
    argv: Sequence[str] | None,
    sudo: bool = False,
) -> int:
    """An interactive terminal in one machine running `argv` (a login shell if
    None); when this side is not a terminal, the command runs plainly."""
    # an interactive shell may sit for hours: it never keeps `destroy` out
    with LabSession(home, lab, hold=False) as session:
        machine = _one_machine(session, machines)
        t = session.transport(machine)
        line = command_line(argv, sudo) if argv is not None else None
        if sys.stdin.isatty() and sys.stdout.isatty():
            from labctl.local.terminal import interact

            return interact(t.open_channel(), line)
        stdin = None if sys.stdin.isatty() else sys.stdin.buffer
        result = t.run(list(argv) if argv is not None else ["bash", "-l"], sudo=sudo, stdin=stdin)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.exit_code


def ssh(home: LabHome, lab: str | None, machine: str, command: str | None) -> int:
    """`labctl ssh`: a shell in `machine`, or `command` there; the remote exit status.

    The user's -c text is a shell line by intent (as with `vagrant ssh -c`); it
    travels as one quoted argument of `sh -c`, never pasted into another line."""
    return terminal(home, lab, [machine], ["sh", "-c", command] if command is not None else None)


@dataclass(frozen=True)
class ExecRow:
    """What `labctl exec` reports per machine."""

    vm: str
    rc: int
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool


def _row(result: Result) -> ExecRow:
    return row_of(ExecRow, result, vm=result.host, rc=result.exit_code)


def exec_many(
    home: LabHome,
    lab: str | None,
    machines: Sequence[str],
    argv: Sequence[str],
    sudo: bool = False,
    timeout: float | None = None,
) -> list[Outcome[ExecRow]]:
    """`argv` on every selected machine at once (each word quoted)."""
    with LabSession(home, lab) as session:
        chosen = session.select(machines)
        return session.each(chosen, lambda t: _row(t.run(argv, sudo=sudo, timeout=timeout)))
