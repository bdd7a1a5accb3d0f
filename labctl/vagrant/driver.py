"""labctl's driver of Vagrant (VagrantDriver): the one place that runs it.

The commands are python-vagrant's, made in adapter.py (with what it lacks);
the driver runs each through labctl.local.process with --machine-readable, so
each line names its machine and a failure its Vagrant::Errors class: an
action's lines become Events, a failure one error (a provision script's own
reason first), each kind of command has its own time limit, and a question
that meets Vagrant's lock is asked again until its limit.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import SpecError, VagrantBusy, VagrantError
from labctl.events import Event, OnEvent
from labctl.local import process
from labctl.local.deadline import Deadline
from labctl.transport.interface import Endpoint
from labctl.transport.ssh import import_paramiko
from labctl.vagrant import adapter

# Vagrant's own lock: another vagrant process works on the machine. Exit 75,
# and never touch the other process. MachineLocked is the machine index's
# lock, which every vagrant process takes for a moment while it loads a
# machine: two questions at once about one machine can meet it.
_BUSY_ERRORS = {"MachineActionLockedError", "EnvironmentLockedError", "MachineLocked"}
_LOCKED_MACHINE = re.compile(r"on the machine '([^']+)'|Name: (\S+)")
# A question to Vagrant that meets its lock is asked again after about this
# many seconds (jittered: readers started together would meet again together),
# until the question's own time limit.
LOCKED_RETRY_EVERY = 0.5
# Vagrant's generic advice after a lock error says to kill the other process:
# labctl never does, so the paragraph is not repeated.
_ADVICE = ("If you believe this message is in error",)
_HINTS = {
    "SuspendNotSupported": "the docker provider cannot suspend: use `labctl halt`, later `labctl up`",
}
# Each kind of Vagrant call has its own default time limit (labctl.local.deadline):
# a question (status, ssh-config, validate, port) answers in seconds, taking a
# lab down in minutes, building one (apt in the guests) in up to an hour. A
# hang there (a stuck provider, a lock) must never hang labctl.
_KINDS = {
    "up": "build",
    "provision": "build",
    "reload": "build",
    "halt": "teardown",
    "suspend": "teardown",
    "resume": "teardown",
    "destroy": "teardown",
}


@dataclass(frozen=True)
class MachineState:
    name: str
    state: str
    provider: str


@dataclass(frozen=True)
class Line:
    """One parsed --machine-readable line."""

    target: str
    kind: str
    data: tuple[str, ...]


def _unescape(text: str) -> str:
    return text.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")


def parse_line(raw: str) -> Line | None:
    """`timestamp,target,kind,data...` -> Line; None for anything else."""
    parts = raw.split(",", 4)
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    return Line(parts[1], parts[2], tuple(_unescape(p) for p in parts[3:]))


def parse_output(stdout: str) -> list[Line]:
    return [line for raw in stdout.splitlines() if (line := parse_line(raw))]


SCRIPT_ERROR = "labctl: error: "


def script_error(lines: Sequence[Line]) -> str | None:
    """The last one-line reason a labctl provision script gave (`fail` in lib.sh)."""
    found = None
    for line in lines:
        if line.kind == "ui" and len(line.data) > 1 and SCRIPT_ERROR in line.data[1]:
            reason = line.data[1].split(SCRIPT_ERROR, 1)[1].strip()
            found = f"{line.target}: {reason}" if line.target else reason
    return found


def error_of(lines: Sequence[Line], stderr: str) -> VagrantError | VagrantBusy:
    """The exception for a failed command: a provision script's own reason,
    else Vagrant's class and message."""
    reason = script_error(lines)
    if reason:
        return VagrantError(reason, error_class="ProvisionScriptFailed")
    for line in lines:
        if line.kind == "error-exit" and line.data:
            cls = line.data[0].rsplit("::", 1)[-1]
            text = line.data[1] if len(line.data) > 1 else cls
            message = " ".join(
                " ".join(p.split())
                for p in text.split("\n\n")
                if not p.lstrip().startswith(_ADVICE)
            )
            if cls in _BUSY_ERRORS:
                named = _LOCKED_MACHINE.search(text)
                return VagrantBusy(
                    f"Vagrant is busy with this lab in another process: {message}",
                    hint="wait for the other vagrant/labctl to finish, then try again",
                    machine=next((g for g in named.groups() if g), "") if named else "",
                )
            return VagrantError(message, hint=_HINTS.get(cls), error_class=cls)
    ui_errors = [
        " ".join(x.data[1].split()) for x in lines if x.kind == "ui" and x.data[:1] == ("error",)
    ]
    detail = " ".join(ui_errors) or " ".join(stderr.split())[-500:] or "vagrant failed"
    return VagrantError(detail)


_ID_LIKE = re.compile(r"[0-9a-f]+")


def _targets(machines: Sequence[str]) -> tuple[str, ...] | None:
    """Machine names for Vagrant's command line (None: every machine). Vagrant
    takes a name made only of hex digits for the start of any machine id in
    its host-wide index (hashicorp/vagrant#4556), so such a name is never
    passed: it could reach another project's machine. Lab files refuse such
    names; this holds for a lab recorded before they did."""
    for name in machines:
        if _ID_LIKE.fullmatch(name):
            raise SpecError(
                f"machine name {name!r} is only hexadecimal digits: Vagrant could take it for "
                "another machine's id, so labctl does not pass it to Vagrant",
                hint="rename the machine in the lab file (a letter past f, or a '-')",
            )
    return tuple(machines) or None


def _target(machine: str) -> str:
    _targets([machine])
    return machine


def ssh_params(text: str) -> dict[str, Endpoint]:
    """Parse `vagrant ssh-config` output (every Host block) with paramiko's parser."""
    config = import_paramiko().SSHConfig.from_text(text)
    found: dict[str, Endpoint] = {}
    for host in sorted(config.get_hostnames() - {"*"}):
        entry = config.lookup(host)
        keys = entry.get("identityfile") or [""]
        found[host] = Endpoint(
            name=host,
            host=entry.get("hostname", "127.0.0.1"),
            port=int(entry.get("port", 22)),
            user=entry.get("user", "vagrant"),
            key_file=keys[0],
        )
    return found


class VagrantDriver:
    """Drive Vagrant in one lab folder."""

    def __init__(
        self,
        root: Path,
        on_event: OnEvent | None = None,
        on_interrupt: Callable[[], None] | None = None,
        timeout: float | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        """`timeout` (seconds from now) or `deadline` (shared with the caller's
        other steps) bounds every call; each kind also has its own default."""
        self.root = root
        self.on_event = on_event
        self.on_interrupt = on_interrupt
        self.deadline = deadline or Deadline.after(timeout)
        self._pv = adapter.python_vagrant(root, self._run)

    # ------------------------------------------------------------ plumbing

    executable = staticmethod(adapter.executable)  # asked before a lab is touched

    def time_limit(self, subcommand: str, stream: bool) -> float:
        """The time limit of one `vagrant SUBCOMMAND`: its kind's default, never
        past the deadline."""
        return self.deadline.cap(_KINDS.get(subcommand, "build") if stream else "quick")

    @staticmethod
    def env() -> dict[str, str]:
        return {**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_NO_COLOR": "1"}

    def _emit(self, raw: str) -> None:
        line = parse_line(raw)
        if self.on_event and line and line.kind == "ui" and len(line.data) > 1:
            self.on_event(Event(line.target, line.data[0], line.data[1]))

    def _run(self, argv: list[str], stream: bool) -> str:
        limit = self.time_limit(argv[1] if len(argv) > 1 else "", stream)
        if stream:  # an action: Vagrant's lock means another vagrant acts on the lab
            return self._once(argv, stream, limit)
        return self._ask(argv, limit)

    def _ask(self, argv: list[str], limit: float) -> str:
        """A question (status, ssh-config...): Vagrant's lock is another
        process passing by, so it is asked again until `limit` has passed."""
        end = time.monotonic() + limit
        left = limit
        while True:
            try:
                return self._once(argv, False, left)
            except VagrantBusy as exc:
                pause = LOCKED_RETRY_EVERY * random.uniform(0.5, 1.5)
                if time.monotonic() + pause >= end:
                    raise self._still_locked(exc, argv, limit) from None
                time.sleep(pause)
                left = end - time.monotonic()

    def _still_locked(self, exc: VagrantBusy, argv: list[str], limit: float) -> VagrantBusy:
        what = f"machine {exc.machine!r}" if exc.machine else "a machine"
        return VagrantBusy(
            f"lab {self.root.name!r}: another vagrant process kept {what} locked "
            f"for {round(limit, 1):g} s (vagrant {argv[1] if len(argv) > 1 else ''})",
            hint="wait for the other vagrant to finish, then try again",
            machine=exc.machine,
        )

    def _once(self, argv: list[str], stream: bool, limit: float) -> str:
        done = process.run(
            argv,
            cwd=self.root,
            env=self.env(),
            on_stdout=self._emit if stream else None,
            on_interrupt=self.on_interrupt,
            timeout=limit,
        )
        if done.returncode != 0:
            raise error_of(parse_output(done.stdout), done.stderr)
        return done.stdout

    # ------------------------------------------------------------ commands

    def validate(self, ignore_provider: bool = False) -> None:
        """`vagrant validate`; with `ignore_provider`, for a provider this host lacks."""
        self._run(adapter.validate_argv(ignore_provider), stream=False)

    def status(self) -> list[MachineState]:
        """Every machine of the lab with Vagrant's state for it."""
        return [
            MachineState(s.name, s.state or "unknown", s.provider or "") for s in self._pv.status()
        ]

    def up(
        self,
        machines: Sequence[str] = (),
        provider: str | None = None,
        provision: bool | None = None,
    ) -> None:
        self._pv.up(vm_name=_targets(machines), provider=provider, provision=provision)

    def provision(self, machines: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
        """Run the provisioners (only those named in `only`, when given)."""
        self._pv.provision(vm_name=_targets(machines), provision_with=list(only) if only else None)

    def reload(self, machines: Sequence[str] = (), provision: bool | None = None) -> None:
        self._pv.reload(vm_name=_targets(machines), provision=provision)

    def halt(self, machines: Sequence[str] = ()) -> None:
        self._pv.halt(vm_name=_targets(machines))

    def suspend(self, machines: Sequence[str] = ()) -> None:
        self._pv.suspend(vm_name=_targets(machines))

    def resume(self, machines: Sequence[str] = ()) -> None:
        self._pv.resume(vm_name=_targets(machines))

    def destroy(self, machines: Sequence[str] = ()) -> None:
        self._pv.destroy(vm_name=_targets(machines))

    def ssh_config(self, machine: str | None = None) -> dict[str, Endpoint]:
        """SSH parameters of one machine, or of all (fails if any is not running)."""
        out = self._pv.ssh_config(vm_name=_target(machine) if machine else None)
        text = "\n".join(line.data[0] for line in parse_output(out) if line.kind == "ssh-config")
        return ssh_params(text)

    def ports(self, machine: str) -> list[tuple[int, int]]:
        """(guest, host) forwarded ports of a running machine."""
        out = self._run(adapter.port_argv(_target(machine)), stream=False)
        pairs = []
        for line in parse_output(out):
            if line.kind == "forwarded_port" and len(line.data) >= 2:
                pairs.append((int(line.data[0]), int(line.data[1])))
        return pairs
