"""Use cases of a lab's life once it exists: status, ls, halt, suspend,
resume, provision, reload, destroy. Bringing a lab up from its file is ops/up/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from labctl import providers
from labctl.errors import LabctlError, SpecError
from labctl.events import OnEvent
from labctl.lab import hostnet
from labctl.lab.home import LabHome, LabPaths
from labctl.lab.spec import LabSpec, check_name
from labctl.local import deadline
from labctl.ops.rows import row_of
from labctl.providers import states as provider_state
from labctl.providers.states import LabStates
from labctl.session import inventory
from labctl.vagrant.driver import VagrantDriver


@dataclass(frozen=True)
class MachineRow:
    """One machine as status and up show it."""

    lab: str
    name: str
    hostname: str
    ip: str
    role: str
    state: str
    provider: str


# ---------------------------------------------------------------- up and co


def split_target(
    home: LabHome, args: Sequence[str], lab: str | None
) -> tuple[str | None, list[str]]:
    """`[LAB] [MACHINE...]`: the first word is a lab unless it is a machine of
    the default lab (so `destroy gone-lab` stays a lab, and nothing to do)."""
    if lab is not None:
        # LABCTL_LAB=demo with `halt demo`: the lab named twice, not a machine
        if (
            args
            and args[0] == lab
            and home.exists(lab)
            and lab not in home.load(lab).machine_names()
        ):
            return lab, list(args[1:])
        return lab, list(args)
    if not args:
        return lab, list(args)
    first = args[0]
    if not home.exists(first):
        try:
            default = home.resolve(None)
        except SpecError:
            default = None
        if default and first in home.load(default).machine_names():
            return None, list(args)
    return first, list(args[1:])


def _machines_of(spec: LabSpec, machines: Sequence[str]) -> list[str]:
    for m in machines:
        spec.machine(m)  # SpecError for an unknown machine
    return list(machines)


def act(
    home: LabHome,
    lab: str | None,
    action: str,
    machines: Sequence[str] = (),
    on_event: OnEvent | None = None,
    timeout: float | None = None,
    provision: bool | None = None,
) -> list[MachineRow]:
    """halt, suspend, resume, provision or reload some or all machines."""
    name = home.resolve(lab)
    spec = home.load(name)
    chosen = _machines_of(spec, machines)
    paths = home.paths(name)
    with home.lock(name, action):
        driver = VagrantDriver(paths.root, on_event=on_event, timeout=timeout)
        try:
            if action == "reload":
                driver.reload(chosen, provision=provision)
            else:
                getattr(driver, action)(chosen)
        finally:
            inventory.invalidate(paths)
        # the machines left running, asked now: readers after this one find the answer
        inventory.warm(paths, spec, driver.deadline)
        rows = status(home, name)
        if action == "reload" and all(r.state == "running" for r in rows):
            # restarted servers come back as their roles left them at boot (a
            # MySQL primary read-only): the set-up `up` ends with puts them back
            from labctl import roles

            roles.setup(home, spec, on_event, deadline.Deadline.after(timeout))
    return rows


def _rows(spec: LabSpec, states: LabStates | None) -> list[MachineRow]:
    return [
        row_of(
            MachineRow,
            m,
            lab=spec.name,
            state=st.state if st else "unknown",
            provider=st.provider if st and st.provider else spec.provider,
        )
        for m in spec.machines
        for st in [states.of(m.name) if states else None]
    ]


@dataclass(frozen=True)
class StatusView:
    """Machines with their states, and who answered for each lab (--verbose)."""

    rows: list[MachineRow]
    asked: list[LabStates]


def status_view(home: LabHome, lab: str | None) -> StatusView:
    """Every machine of a lab with its state, asked of the provider (a
    failing `vagrant status`, where it had to be asked, is an error)."""
    name = home.resolve(lab)
    spec = home.load(name)
    asked = provider_state.ask([(home.paths(name), spec)])
    return StatusView(_rows(spec, asked[0]), asked)


def status(home: LabHome, lab: str | None) -> list[MachineRow]:
    return status_view(home, lab).rows


def ls(home: LabHome) -> StatusView:
    """Every machine of every lab: one question per provider for all the labs.
    A lab that cannot be read or asked shows as such instead of hiding the others."""
    names = home.names()
    rows: dict[str, list[MachineRow]] = {}
    readable: list[tuple[LabPaths, LabSpec]] = []
    for name in names:
        try:
            readable.append((home.paths(name), home.load(name)))
        except LabctlError:
            rows[name] = [MachineRow(name, "-", "-", "-", "-", "unreadable lab.json", "-")]
    asked = provider_state.ask(readable, tolerant=True)
    for (_, spec), states in zip(readable, asked, strict=True):
        rows[spec.name] = _rows(spec, states)
    return StatusView([r for name in names for r in rows[name]], asked)


# ---------------------------------------------------------------- destroy


def destroy(
    home: LabHome, lab: str | None, machines: Sequence[str] = (), on_event: OnEvent | None = None
) -> str | None:
    """Destroy machines, and the lab folder with them; the lab's name, or None
    when there was no such lab (nothing to do)."""
    name = lab if lab is not None else os.environ.get("LABCTL_LAB")
    if name is None:
        labs = home.names()
        if not labs:
            return None
        name = home.resolve(None)  # the only lab, or the error listing several
    check_name(name)  # a bad name is bad usage, not "nothing to destroy"
    for m in machines:
        check_name(m, "machine name")
    if not home.exists(name):
        return None
    try:
        spec: LabSpec | None = home.load(name)
    except SpecError:
        if machines:
            raise
        spec = None  # a record this labctl cannot read: Vagrant still knows the machines
    chosen = _machines_of(spec, machines) if spec else []
    paths = home.paths(name)
    with home.lock(name, "destroy"):
        # Vagrant knows a machine by the id it recorded; with none recorded
        # (a lab only rendered) it has nothing to destroy, and is not asked
        if inventory.machine_ids(paths):
            VagrantDriver(paths.root, on_event=on_event).destroy(chosen)
        inventory.invalidate(paths)
        if spec and chosen and set(chosen) != set(spec.machine_names()):
            return name
        if spec:
            providers.get(spec.provider).destroyed(spec)
        try:
            shutil.rmtree(paths.root)
        except OSError as exc:
            raise LabctlError(f"the machines are gone, but not the lab folder: {exc}") from exc
        hostnet.SubnetClaims().release(home.root, name)
    return name
