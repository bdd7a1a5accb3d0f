"""SSH sessions to a lab's machines, opened in parallel, with per-machine results.

Fan-out follows Fabric's group idea: the same call on many machines returns
one outcome per machine; the caller decides how to report the failures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from labctl import inventory
from labctl.errors import ConnectError, GuestError, LabctlError, SpecError
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
        return [one(names[0])]
    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(names))))
    try:
        results = list(pool.map(one, names))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


class LabSession:
    """Open SSH connections to some machines of one lab."""

    def __init__(self, home: LabHome, lab: str | None, connect_timeout: float = 8.0) -> None:
        self.name = home.resolve(lab)
        self.spec: LabSpec = home.load(self.name)
        self.paths: LabPaths = home.paths(self.name)
        self.connect_timeout = connect_timeout
        self.host_keys = HostKeys(self.paths.host_keys)
        self.transports: dict[str, SshTransport] = {}
        self._lock = threading.Lock()
        self._cached: dict[str, Endpoint] | None = None
        self._refreshed = False

    def running(self) -> list[str]:
        """The lab's running machines, in the lab's order."""
        endpoints = self._endpoints()
        return [m for m in self.spec.machine_names() if m in endpoints]

    def select(self, machines: Sequence[str] = (), role: str | None = None) -> list[str]:
        """The machines meant: those named (checked), else every running one
        (that holds `role`, when given; SpecError for a lab without it)."""
        if machines:
            for m in machines:
                self.spec.machine(m)
            return list(dict.fromkeys(machines))
        running = self.running()
        if role is not None:
            holders = {m.name for m in self.spec.with_role(role)}
            if not holders:
                raise SpecError(
                    f"lab {self.name!r} has no machine with the role {role}",
                    hint="name machines with --vm, or give one the role in the lab file",
                )
            running = [m for m in running if m in holders]
        if not running:
            raise SpecError(
                f"no machine of lab {self.name!r} is running",
                hint=f"start them: labctl up {self.name}",
            )
        return running

    def _endpoints(self, refresh: bool = False) -> dict[str, Endpoint]:
        """SSH endpoints from the cached ssh-config; refreshed at most once per
        session (a machine halted or moved by plain vagrant leaves it stale)."""
        with self._lock:
            if self._cached is None or (refresh and not self._refreshed):
                self._refreshed = self._refreshed or refresh
                self._cached = inventory.endpoints(self.paths, refresh=refresh)
            return self._cached

    def _open(self, name: str) -> SshTransport:
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

    def _connect_one(self, name: str, endpoints: dict[str, Endpoint]) -> SshTransport:
        if name not in endpoints:
            raise ConnectError(f"machine {name!r} is not running", hint=f"labctl up {self.name}")
        return SshTransport(endpoints[name], self.host_keys, self.connect_timeout).connect()

    def transport(self, machine: str) -> SshTransport:
        """One connected machine (ConnectError if it cannot be reached)."""
        return self._open(machine)

    def each(self, machines: Sequence[str], fn: Callable[[SshTransport], T]) -> list[Outcome[T]]:
        """Connect to each machine and run fn(transport) there, all in parallel;
        a machine that cannot be reached becomes a failed outcome."""
        return fan_out(machines, lambda name: fn(self._open(name)))

    def close(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports.clear()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
