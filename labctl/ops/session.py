"""SSH sessions to a lab's machines, opened in parallel, with per-machine results.

Fan-out follows Fabric's group idea: the same call on many machines returns
one outcome per machine; the caller decides how to report the failures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from labctl import inventory
from labctl.errors import ConnectError, LabctlError, SpecError
from labctl.home import LabHome, LabPaths
from labctl.spec import LabSpec
from labctl.transport import Endpoint, HostKeys, SshTransport

T = TypeVar("T")
MAX_PARALLEL = 16


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one machine gave back: a value or an error."""

    vm: str
    value: T | None = None
    error: LabctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fan_out(names: Sequence[str], fn: Callable[[str], T]) -> list[Outcome[T]]:
    """fn(name) for every name in parallel (bounded), in the order given."""

    def one(name: str) -> Outcome[T]:
        try:
            return Outcome(name, value=fn(name))
        except LabctlError as exc:
            return Outcome(name, error=exc)

    if len(names) == 1:
        return [one(names[0])]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(names)))) as pool:
        return list(pool.map(one, names))


class LabSession:
    """Open SSH connections to some machines of one lab."""

    def __init__(self, home: LabHome, lab: str | None, connect_timeout: float = 20.0) -> None:
        self.name = home.resolve(lab)
        self.spec: LabSpec = home.load(self.name)
        self.paths: LabPaths = home.paths(self.name)
        self.connect_timeout = connect_timeout
        self.host_keys = HostKeys(self.paths.host_keys)
        self.transports: dict[str, SshTransport] = {}

    def running(self) -> list[str]:
        """The lab's running machines, in the lab's order."""
        endpoints = inventory.endpoints(self.paths)
        return [m for m in self.spec.machine_names() if m in endpoints]

    def select(self, machines: Sequence[str] = ()) -> list[str]:
        """The machines meant: those named (checked), else every running one."""
        if machines:
            for m in machines:
                self.spec.machine(m)
            return list(dict.fromkeys(machines))
        running = self.running()
        if not running:
            raise SpecError(
                f"no machine of lab {self.name!r} is running",
                hint=f"start them: labctl up {self.name}",
            )
        return running

    def connect(self, machines: Sequence[str]) -> list[Outcome[SshTransport]]:
        """Connect to each machine in parallel. Machines that cannot be reached
        with the cached ssh-config get one more try with a fresh one (a machine
        may have been halted or moved by plain vagrant)."""
        outcomes = self._connect(machines, inventory.endpoints(self.paths))
        stale = [o.vm for o in outcomes if isinstance(o.error, ConnectError) and not o.error.pinned]
        if stale:
            retried = {o.vm: o for o in self._connect(stale, inventory.endpoints(self.paths, True))}
            outcomes = [retried.get(o.vm, o) for o in outcomes]
        for o in outcomes:
            if o.value is not None:
                self.transports[o.vm] = o.value
        return outcomes

    def _connect(
        self, machines: Sequence[str], endpoints: dict[str, Endpoint]
    ) -> list[Outcome[SshTransport]]:
        def one(name: str) -> SshTransport:
            if name not in endpoints:
                raise ConnectError(
                    f"machine {name!r} is not running", hint=f"labctl up {self.name}"
                )
            return SshTransport(endpoints[name], self.host_keys, self.connect_timeout).connect()

        return fan_out(machines, one)

    def transport(self, machine: str) -> SshTransport:
        """One connected machine, or the error that kept it from connecting."""
        if machine not in self.transports:
            outcome = self.connect([machine])[0]
            if outcome.error:
                raise outcome.error
        return self.transports[machine]

    def each(self, machines: Sequence[str], fn: Callable[[SshTransport], T]) -> list[Outcome[T]]:
        """fn(transport) on every machine in parallel; connection errors become outcomes."""
        failed = {
            o.vm: o.error
            for o in self.connect([m for m in machines if m not in self.transports])
            if o.error
        }

        def one(name: str) -> T:
            if name in failed:
                raise failed[name]
            return fn(self.transports[name])

        return fan_out(machines, one)

    def close(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports.clear()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
