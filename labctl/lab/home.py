"""Where labs live: one folder per lab under LABCTL_HOME, and the lock on each."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import LabBusy, SpecError
from labctl.lab.spec import DEFAULT_SUBNET, LabSpec, check_name, is_name, spec_from_record

RECORD = "lab.json"
STATE = ".labctl"


@dataclass(frozen=True)
class LabPaths:
    """The files of one lab folder."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def vagrantfile(self) -> Path:
        return self.root / "Vagrantfile"

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def state(self) -> Path:
        """labctl's own files (caches, pinned host keys); Vagrant's live in .vagrant/."""
        return self.root / STATE

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def ssh_config_cache(self) -> Path:
        return self.state / "ssh-config.json"

    @property
    def ssh_config_lock(self) -> Path:
        """Held by the one reader asking Vagrant to fill the cache; the others wait."""
        return self.state / "ssh-config.lock"

    @property
    def host_keys(self) -> Path:
        return self.state / "host-keys.json"

    @property
    def known_hosts(self) -> Path:
        """OpenSSH's copy of the pinned keys, by HostKeyAlias (ssh-config, inventory)."""
        return self.state / "known_hosts"

    @property
    def unprovisioned(self) -> Path:
        """The machines an `up` is provisioning, until it has finished."""
        return self.state / "provisioning.json"

    @property
    def moved(self) -> Path:
        """Roles labctl moved (switchover) and what the lab file declared before."""
        return self.state / "moved-roles.json"

    @property
    def vagrant_dir(self) -> Path:
        return self.root / ".vagrant"


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "labctl" / "labs"


class LabHome:
    """The folder holding every lab; lists, loads and locks them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def locate(cls, home: str | None = None) -> LabHome:
        """--home, else LABCTL_HOME, else ~/.local/share/labctl/labs."""
        chosen = home or os.environ.get("LABCTL_HOME")
        return cls(Path(chosen).expanduser().resolve() if chosen else default_home())

    def paths(self, name: str) -> LabPaths:
        return LabPaths(self.root / check_name(name))

    def exists(self, name: str) -> bool:
        return (self.root / name / RECORD).is_file()

    def names(self) -> list[str]:
        """Every lab here, sorted (not a staging folder beside them)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.parent.name for p in self.root.glob(f"*/{RECORD}") if is_name(p.parent.name)
        )

    def load(self, name: str) -> LabSpec:
        """The spec a lab was rendered from."""
        if not self.exists(name):
            raise SpecError(self._unknown(name))
        try:
            data = json.loads(self.paths(name).record.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read lab {name!r}: {exc}") from exc
        return spec_from_record(data)

    def moved(self, name: str) -> dict[str, Any]:
        """The roles labctl moved in a lab (roles.Moves); empty when none."""
        path = self.paths(name).moved
        try:
            found = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read {path}: {exc}") from exc
        if not isinstance(found, dict):
            raise SpecError(f"cannot read {path}: not a JSON object")
        return found

    def resolve(self, name: str | None) -> str:
        """The lab meant: the one named, else LABCTL_LAB, else the only lab there is."""
        chosen = name if name is not None else os.environ.get("LABCTL_LAB")
        if chosen is not None:
            check_name(chosen)  # '' too: never "the only lab"
            if not self.exists(chosen):
                raise SpecError(self._unknown(chosen))
            return chosen
        labs = self.names()
        if not labs:
            raise SpecError(f"no lab in {self.root}", hint="create one: labctl up nodes")
        if len(labs) > 1:
            raise SpecError(f"several labs exist ({', '.join(labs)}): name one, or set LABCTL_LAB")
        return labs[0]

    def _unknown(self, name: str) -> str:
        labs = self.names()
        listed = f" (labs: {', '.join(labs)})" if labs else ""
        return f"no lab named {name!r} in {self.root}{listed}"

    # ------------------------------------------------------------ subnets

    def subnets_in_use(self, except_lab: str | None = None) -> dict[str, str]:
        """subnet -> lab name, for every lab but `except_lab`."""
        used: dict[str, str] = {}
        for name in self.names():
            if name == except_lab:
                continue
            with contextlib.suppress(SpecError):
                used.update(dict.fromkeys(self.load(name).subnets(), name))
        return used

    def free_subnet(self, taken: Callable[[str], bool] = lambda subnet: False) -> str:
        """The first 192.168.N (N from 56) that no lab here uses and that is
        not `taken` (a network the host is already on)."""
        used = self.subnets_in_use()
        prefix, _, first = DEFAULT_SUBNET.rpartition(".")
        for third in range(int(first), 256):
            candidate = f"{prefix}.{third}"
            if candidate not in used and not taken(candidate):
                return candidate
        raise SpecError("every 192.168.x subnet is taken by a lab or the host: pass --subnet")

    def check_subnet_free(self, subnet: str, lab: str) -> None:
        owner = self.subnets_in_use(except_lab=lab).get(subnet)
        if owner:
            raise SpecError(f"subnet {subnet} is already used by lab {owner!r}")

    # ------------------------------------------------------------ locking

    @contextlib.contextmanager
    def lock(self, name: str, action: str, shared: bool = False) -> Iterator[None]:
        """Hold the lab's lock for one labctl action; LabBusy if it cannot be had.

        Writers (up, halt, destroy...) hold it alone; readers (ctr, mysql,
        exec) share it with each other, never with a writer: `destroy` does
        not pull the machines from under a running `mysql check`.

        The lock file lives beside the lab folder, not in it, so that creating
        and deleting the folder happen under the lock too. With no lab left
        after a writer's action, the lock file goes too (while still held).
        """
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{check_name(name)}.lock"
        fd = self._take(path, name, shared)
        try:
            if not shared:  # the writer says who it is, for those it keeps out
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"labctl {action} (pid {os.getpid()})".encode(), 0)
            yield
        finally:
            if not shared:
                os.ftruncate(fd, 0)  # never name a finished writer to the next one kept out
                if not (self.root / name).exists():
                    with contextlib.suppress(OSError):
                        path.unlink()
            os.close(fd)

    @staticmethod
    def _take(path: Path, name: str, shared: bool = False) -> int:
        """An fd holding the flock of the file now at `path`."""
        kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or (
                    "another labctl (ctr, mysql, exec or the like)"
                )
                os.close(fd)
                raise LabBusy(
                    f"lab {name!r} is busy: {holder} is working on it",
                    hint="wait for it to finish, then try again",
                ) from None
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                return fd
            # its holder removed the file as we opened it: lock the new one
            os.close(fd)
