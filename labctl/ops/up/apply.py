"""up: the plan applied (the machines it removes destroyed first, then the
new files, `vagrant up`, reloads, provisioning, and the record last), then
each role's set-up."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labctl import providers
from labctl.events import Event, OnEvent, info
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.local.deadline import Deadline
from labctl.local.fsutil import atomic_write
from labctl.ops.lifecycle import MachineRow, status
from labctl.ops.up.folder import staged, stale, vagrant_validate
from labctl.ops.up.prepare import Prepared, prepare, with_subnets_claimed
from labctl.ops.up.source import Request
from labctl.project import plan, render
from labctl.session import inventory
from labctl.vagrant.driver import VagrantDriver


@dataclass(frozen=True)
class UpResult:
    """The machine table after `up`, what the roles want said (URLs...), and
    the plan that was applied."""

    rows: list[MachineRow]
    notes: list[str]
    steps: list[plan.Step] = field(default_factory=list)


def up(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    on_event: OnEvent,
    timeout: float | None = None,
    on_plan: Callable[[Prepared], None] | None = None,
) -> UpResult:
    """Bring the lab to what its file (or topology) says: for a new lab,
    render and `vagrant up`; for an existing one, apply the plan (removed and
    recreated machines destroyed first, with the Vagrantfile that knows them,
    then the new files, `vagrant up`, reloads, provisioning of the changed
    machines only). Then each role's set-up (replication, Jenkins). The plan
    is made under the lab's lock (so it is the lab as it is), and `timeout`
    bounds the whole of it."""
    deadline = Deadline.after(timeout)
    again = functools.partial(prepare, home, lab, name, request)
    first = again()  # bad input: refused before any lock
    with home.lock(first.spec.name, "up"):
        prepared = with_subnets_claimed(home, again)
        spec = prepared.spec
        for note in prepared.notes:
            on_event(info("", note))
        if on_plan is not None:
            on_plan(prepared)
        paths = home.paths(spec.name)
        # before anything is written: a refusal leaves no lab folder behind
        providers.get(spec.provider).ready(spec, on_event, prepared.created)
        driver = VagrantDriver(
            paths.root,
            on_event=on_event,
            on_interrupt=lambda: on_event(
                Event("", "warn", "interrupted: waiting for Vagrant to clean up...")
            ),
            deadline=deadline,
        )
        try:
            apply(home, prepared, driver)
        except BaseException:
            if not paths.root.exists():  # nothing was made: the subnet is free again
                hostnet.SubnetClaims().release(home.root, spec.name)
            raise
        finally:
            inventory.invalidate(paths)
        # asked now, under the lab's lock: the set-up and every reader after `up` find it
        inventory.warm(paths, spec, deadline)
        from labctl import roles  # the roles' set-up: SSH, guests' clients

        notes = roles.setup(home, spec, on_event, deadline)
    return UpResult(status(home, spec.name), notes, prepared.steps)


def apply(
    home: LabHome,
    prepared: Prepared,
    driver: VagrantDriver,
    validate: Callable[[Path], None] = vagrant_validate,
) -> None:
    """Carry out a plan. The new files are validated before any machine is
    destroyed; an existing lab's record (lab.json) is written last, so a plan
    cut short is planned again, not forgotten."""
    spec, files, created = prepared.spec, prepared.files, prepared.created
    paths = home.paths(spec.name)
    by_action: dict[str, list[str]] = {}
    for step in prepared.changes:
        by_action.setdefault(step.action, []).append(step.machine)
    doomed = [
        m for m in by_action.get("remove", []) + by_action.get("recreate", []) if m in created
    ]
    write = files is not None and stale(paths.root, files)
    with (
        staged(home, spec, files, validate) if files and write else contextlib.nullcontext()
    ) as staging:
        if doomed:
            driver.destroy(doomed)  # the current Vagrantfile still defines them
        if staging is not None:
            render.install(staging, paths.root, record=prepared.existing is None)
            inventory.invalidate(paths)
    # Vagrant marks a machine provisioned before its provisioners run: until
    # this plan is through, labctl remembers which it is provisioning
    # (a machine left unprovisioned before is in the plan as such already)
    provisioning = {
        s.machine for s in prepared.changes if s.action in ("add", "recreate") or s.provision
    }
    if provisioning:
        atomic_write(paths.unprovisioned, json.dumps(sorted(provisioning)))
    # new and recreated machines are provisioned on creation; running ones are left alone
    driver.up(provider=spec.provider)
    reload = [s for s in prepared.changes if s.action == "reload"]
    for provision in (False, True):
        chosen = [s.machine for s in reload if s.provision == provision]
        if chosen:
            driver.reload(chosen, provision=provision or None)
    # a machine an earlier, interrupted `up` created but did not record
    unfinished = [m for m in by_action.get("add", []) if m in created and m not in doomed]
    again = by_action.get("provision", []) + unfinished
    if again:
        driver.provision(again)
    paths.unprovisioned.unlink(missing_ok=True)
    if files is not None and prepared.existing is not None:
        atomic_write(paths.record, files["lab.json"], mode=0o644)
