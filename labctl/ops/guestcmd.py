"""Commands in guests on the user's behalf: `labctl ssh`, `labctl exec`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from labctl.home import LabHome
from labctl.ops.session import LabSession, Outcome
from labctl.transport import Result, command_line


def ssh(home: LabHome, lab: str | None, machine: str, command: str | None) -> int:
    """A terminal in `machine` (or `command` there); returns the remote exit status."""
    with LabSession(home, lab) as session:
        session.spec.machine(machine)
        t = session.transport(machine)
        # The user's -c text is a shell line by intent (as with `vagrant ssh -c`);
        # it travels as one quoted argument of sh -c, never pasted into another line.
        line = command_line(["sh", "-c", command]) if command is not None else None
        if sys.stdin.isatty() and sys.stdout.isatty():
            from labctl.terminal import interact

            return interact(t.open_channel(), line)
        result = t.run(
            ["sh", "-c", command or "exec bash -l"],
            stdin=None if sys.stdin.isatty() else sys.stdin.buffer,
        )
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.exit_code


def exec_many(
    home: LabHome,
    lab: str | None,
    machines: Sequence[str],
    argv: Sequence[str],
    sudo: bool = False,
    timeout: float | None = None,
) -> list[Outcome[Result]]:
    """`argv` on every selected machine at once."""
    with LabSession(home, lab) as session:
        chosen = session.select(machines)
        return session.each(chosen, lambda t: t.run(argv, sudo=sudo, timeout=timeout))
