"""SSH sessions to a lab's machines, opened in parallel, with per-machine results.

Fan-out follows Fabric's group idea: the same call on many machines returns
one outcome per machine; the caller decides how to report the failures.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from labctl.errors import (
    ConnectError,
    ExitCode,
    GuestError,
    LabctlError,
    SpecError,
    Unreachable,
)
from labctl.lab.home import LabHome, LabPaths
from labctl.lab.spec import LabSpec
from labctl.local.deadline import Deadline
from labctl.providers import states as provider_state
from labctl.providers.states import LabStates
from labctl.session import inventory
from labctl.transport.hostkeys import HostKeys
from labctl.transport.interface import Endpoint, Transport

T = TypeVar("T")
MAX_PARALLEL = 16


class Backend(Protocol):
    """Where a session's answers come from: the provider (states), Vagrant
    (SSH endpoints) and the guests (transports). The tests put a fake here."""

    def states(self, paths: LabPaths, spec: LabSpec) -> LabStates: ...

    def endpoints(
        self, paths: LabPaths, refresh: bool, running: list[str], every: bool, deadline: Deadline
    ) -> dict[str, Endpoint]: ...

    def connect(
        self, endpoint: Endpoint, host_keys: HostKeys, connect_timeout: float, deadline: Deadline
    ) -> Transport: ...


class GuestBackend:
    """The real one: the provider asked, Vagrant's ssh-config, SSH."""

    def states(self, paths: LabPaths, spec: LabSpec) -> LabStates:
        return provider_state.ask([(paths, spec)])[0]

    def endpoints(
        self, paths: LabPaths, refresh: bool, running: list[str], every: bool, deadline: Deadline
    ) -> dict[str, Endpoint]:
        return inventory.endpoints(paths, running, every, refresh=refresh, deadline=deadline)

    def connect(
        self, endpoint: Endpoint, host_keys: HostKeys, connect_timeout: float, deadline: Deadline
    ) -> Transport:
        from labctl.transport.ssh import SshTransport  # paramiko: only when a guest is asked

        return SshTransport(endpoint, host_keys, connect_timeout, deadline).connect()


BACKEND: Backend = GuestBackend()


class MachineDown(GuestError):
    """A machine a command expected to answer is not running."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one machine gave back: a value or an error."""

    vm: str
    value: T | None = None
    error: LabctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Outcomes(list[Outcome[T]]):
    """One outcome per machine, in the order asked (Fabric's GroupResult)."""

    @property
    def failed(self) -> list[Outcome[T]]:
        return [o for o in self if o.error is not None]

    @property
    def values(self) -> dict[str, T]:
        """Each machine that answered -> its value."""
        return {o.vm: o.value for o in self if o.error is None and o.value is not None}

    def check(self) -> Outcomes[T]:
        """These outcomes, or GroupFailed when any machine failed."""
        if self.failed:
            raise GroupFailed(self.failed)
        return self


class GroupFailed(LabctlError):
    """Some machines failed, each in its own words, as one error (Fabric's
    GroupException); its exit code is theirs when they share one, else 1."""

    def __init__(self, failed: Sequence[Outcome[Any]]) -> None:
        errors = [o.error for o in failed if o.error is not None]
        super().__init__(
            "; ".join(e.message for e in errors), next((e.hint for e in errors if e.hint), None)
        )
        self.errors = errors
        codes = {e.exit_code for e in errors}
        self.exit_code = codes.pop() if len(codes) == 1 else ExitCode.FAILED


def fan_out(names: Sequence[str], fn: Callable[[str], T]) -> Outcomes[T]:
    """fn(name) for every name in parallel (bounded), in the order given.

    Any failure on one machine becomes that machine's outcome (an unexpected
    exception too, as a GuestError naming it), so one machine never hides
    the others' results. On Ctrl-C the pool is abandoned, not joined: the
    caller closes the connections, which ends the workers' waits."""

    def one(name: str) -> Outcome[T]:
        try:
            return Outcome(name, value=fn(name))
        except LabctlError as exc:
            return Outcome(name, error=exc)
        except Exception as exc:
            return Outcome(name, error=GuestError(f"{name}: {type(exc).__name__}: {exc}"))

    if len(names) == 1:
        return Outcomes([one(names[0])])
    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(names))))
    try:
        results = Outcomes(pool.map(one, names))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


class LabSession:
    """Open SSH connections to some machines of one lab."""

    def __init__(
        self,
        home: LabHome,
        lab: str | None,
        connect_timeout: float = 8.0,
        hold: bool = True,
        deadline: Deadline | None = None,
    ) -> None:
        """`hold`: share the lab's lock for the session (a reader), so no writer
        (destroy, halt, up) changes the machines meanwhile; False where the
        caller holds the lab already (a role's set-up inside `up`). `deadline`:
        the operation's (`--timeout`), which no command in a guest outlives."""
        self.name = home.resolve(lab)
        self._held: contextlib.AbstractContextManager[None] | None = None
        if hold:
            held = home.lock(self.name, "read", shared=True)
            held.__enter__()
            self._held = held
        try:
            self.spec: LabSpec = home.load(self.name)
        except BaseException:
            self._release()
            raise
        self.paths: LabPaths = home.paths(self.name)
        self.connect_timeout = connect_timeout
        self.deadline = deadline or Deadline()
        self.host_keys = HostKeys(self.paths.host_keys)
        self.backend = BACKEND
        self.transports: dict[str, Transport] = {}
        self._lock = threading.RLock()
        self._cached: dict[str, Endpoint] | None = None
        self._refused: LabctlError | None = None
        self._states: LabStates | None = None
        self._refreshed = False

    def states(self) -> LabStates:
        """Each machine's state, asked of the provider once per session."""
        with self._lock:
            if self._states is None:
                self._states = self.backend.states(self.paths, self.spec)
            return self._states

    def forget_states(self) -> None:
        """Ask the provider again next time: a machine was halted or started meanwhile."""
        with self._lock:
            self._states = None

    def running(self) -> list[str]:
        """The lab's running machines, in the lab's order."""
        return self.states().running()

    def select(self, machines: Sequence[str] = (), role: str | None = None) -> list[str]:
        """The machines expected to answer: those named (checked), else every
        machine of the lab (that holds `role`, when given; SpecError for a lab
        without it). Those not running are the caller's failures to report,
        never left out."""
        if machines:
            for m in machines:
                self.spec.machine(m)
            return list(dict.fromkeys(machines))
        names = self.spec.machine_names()
        if role is not None:
            holders = {m.name for m in self.spec.with_role(role)}
            if not holders:
                raise SpecError(
                    f"lab {self.name!r} has no machine with the role {role}",
                    hint="name machines with --vm, or give one the role in the lab file",
                )
            names = [m for m in names if m in holders]
        return names

    def require_running(self, machine: str) -> None:
        """MachineDown, in the provider's words, for a machine not running."""
        st = self.states().of(machine)
        if st is not None and not st.running:
            raise MachineDown(f"{machine}: not running ({st.describe()}) — labctl up {self.name}")

    def down(self, machines: Sequence[str]) -> Outcomes[Any]:
        """A failed outcome for each of `machines` that is not running."""
        found: Outcomes[Any] = Outcomes()
        for m in machines:
            try:
                self.require_running(m)
            except MachineDown as exc:
                found.append(Outcome(m, error=exc))
        return found

    def _endpoints(self, refresh: bool = False) -> dict[str, Endpoint]:
        """SSH endpoints from the cached ssh-config; refreshed at most once per
        session (a machine halted or moved by plain vagrant leaves it stale).
        Vagrant is asked for the machines the provider says run, and answers
        for each of them or fails in its own words."""
        with self._lock:
            again = refresh and not self._refreshed
            if self._cached is None or again:
                # Vagrant's refusal, once met, is every machine's: the other
                # workers do not each wait out the same lock or time limit
                if self._refused is not None and not again:
                    raise self._refused
                self._refreshed = self._refreshed or refresh
                running = self.running()
                every = len(running) == len(self.spec.machines)
                try:
                    self._cached = self.backend.endpoints(
                        self.paths, refresh, running, every, self.deadline
                    )
                except LabctlError as exc:
                    self._refused = exc
                    raise
            return self._cached

    def _open(self, name: str) -> Transport:
        if name in self.transports:
            return self.transports[name]
        cached = self._endpoints()
        try:
            t = self._connect_one(name, cached)
        except ConnectError:
            # Worth a second try only when the machine has moved (halted, or
            # restarted by plain vagrant onto another address, maybe one that
            # leads to another machine whose host key was refused).
            fresh = self._endpoints(refresh=True)
            if fresh.get(name) == cached.get(name):
                raise
            t = self._connect_one(name, fresh)
        with self._lock:
            self.transports[name] = t
        return t

    def _connect_one(self, name: str, endpoints: dict[str, Endpoint]) -> Transport:
        if name not in endpoints:
            raise ConnectError(f"machine {name!r} is not running", hint=f"labctl up {self.name}")
        return self.backend.connect(
            endpoints[name], self.host_keys, self.connect_timeout, self.deadline
        )

    def transport(self, machine: str) -> Transport:
        """One connected machine (MachineDown if it is not running,
        ConnectError if it cannot be reached)."""
        self.require_running(machine)
        try:
            return self._open(machine)
        except Unreachable as exc:
            # the provider says it runs: its SSH server is what fails
            exc.hint = (
                f"{machine} is running but its SSH server does not answer: "
                f"labctl reload {self.name} {machine} restarts the machine"
            )
            raise

    def each(self, machines: Sequence[str], fn: Callable[[Transport], T]) -> Outcomes[T]:
        """Connect to each machine and run fn(transport) there, all in parallel;
        a machine that cannot be reached becomes a failed outcome."""
        return fan_out(machines, lambda name: fn(self.transport(name)))

    def close(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports.clear()
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
