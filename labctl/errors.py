"""The few kinds of failure labctl knows, each with the exit code it maps to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; documented in the README and relied on by scripts."""

    OK = 0
    FAILED = 1
    USAGE = 2
    BUSY = 75  # EX_TEMPFAIL: another labctl or vagrant holds the lab
    TIMEOUT = 124  # what timeout(1) returns
    INTERRUPTED = 130  # 128 + SIGINT


class LabctlError(Exception):
    """An expected failure: a message for the user, an optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SpecError(LabctlError):
    """Bad input: an option, a lab name, a topology, a machine name."""

    exit_code = ExitCode.USAGE


class InvalidField(SpecError):
    """A value of a lab file that is wrong; `loc` is its path in the file
    (keys and list indexes), which the lab file reader turns into a line."""

    def __init__(self, loc: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.loc = loc


class VagrantError(LabctlError):
    """Vagrant failed; `error_class` is Vagrant's own (Vagrant::Errors::<Class>)."""

    def __init__(self, message: str, hint: str | None = None, error_class: str = "") -> None:
        super().__init__(message, hint)
        self.error_class = error_class


class LabBusy(LabctlError):
    """Another labctl or vagrant process is working on this lab."""

    exit_code = ExitCode.BUSY


class VagrantBusy(LabBusy):
    """Vagrant's own lock: another vagrant process is using a machine of the
    lab (Vagrant::Errors::MachineLocked, MachineActionLockedError...);
    `machine` is the one Vagrant named, if it did."""

    def __init__(self, message: str, hint: str | None = None, machine: str = "") -> None:
        super().__init__(message, hint)
        self.machine = machine


class TimedOut(LabctlError):
    """An operation given a time limit did not finish within it."""

    exit_code = ExitCode.TIMEOUT


class Interrupted(LabctlError):
    """The user pressed Ctrl-C; whatever ran below has finished its clean-up."""

    exit_code = ExitCode.INTERRUPTED


class ConnectError(LabctlError):
    """A guest could not be reached over SSH; `pinned` when its host key was refused."""

    def __init__(self, message: str, hint: str | None = None, pinned: bool = False) -> None:
        super().__init__(message, hint)
        self.pinned = pinned


class Unreachable(ConnectError):
    """No SSH server answered at the machine's address within the time limit."""


class GuestError(LabctlError):
    """A command in a guest, or a check of a guest's state, failed."""
