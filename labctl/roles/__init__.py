"""The roles a machine can hold, and the one table that names them.

A role family is one `RoleFamily` (base.py: each hook, with the answer of a
family that has nothing to do there) in a module of its own: the roles it
defines with their options (a dataclass, or None), its lab-wide options
(`key` in a lab file, `lab_options`), `complete_lab_options`, `resolve`
(defaults and cross-machine checks), `check_plan` (refusing a plan),
`provisioners` (pure: what a machine of the role runs) and `setup` (after
`up`, over SSH). Adding a role touches its module, its provision script, a
test, and FAMILIES below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labctl.events import OnEvent, ignore
from labctl.local.deadline import Deadline
from labctl.roles.base import Chosen, RoleFamily, Where
from labctl.roles.containerd import Containerd
from labctl.roles.jenkins import Jenkins
from labctl.roles.mysql import Mysql
from labctl.session.group import fan_out

if TYPE_CHECKING:
    from labctl.lab.home import LabHome
    from labctl.lab.hostpaths import HostPaths
    from labctl.lab.spec import LabSpec, Machine, Provisioner
    from labctl.project.plan import Step

# Provisioning and set-up run in this order.
FAMILIES: tuple[RoleFamily, ...] = (Containerd(), Mysql(), Jenkins())


@dataclass(frozen=True)
class Role:
    name: str
    family: RoleFamily
    options: type | None


ROLES: dict[str, Role] = {
    name: Role(name, family, options)
    for family in FAMILIES
    for name, options in family.roles.items()
}


def lab_options() -> dict[str, type]:
    """Lab-wide option groups by their key in a lab file (mysql, jenkins)."""
    return {f.key: f.lab_options for f in FAMILIES if f.key and f.lab_options}


def complete_lab_options(
    given: dict[str, dict[str, Any]], reach: HostPaths
) -> dict[str, dict[str, Any]]:
    """Each family's lab-wide options as the family completes them (a path
    relative to the lab file made absolute, where the lab file may reach);
    InvalidField when one is wrong."""
    return {f.key: f.complete_lab_options(given.get(f.key, {}), reach) for f in FAMILIES if f.key}


def families_of(spec: LabSpec) -> list[RoleFamily]:
    """The families some machine of the lab belongs to, in FAMILIES order."""
    held = {r for m in spec.machines for r in m.roles}
    return [f for f in FAMILIES if held & set(f.roles)]


def resolve(spec: LabSpec, where: Where) -> Chosen:
    """Every machine's role options with defaults filled in, checked across machines."""
    merged: Chosen = {}
    for family in FAMILIES:
        for machine, options in family.resolve(spec, where).items():
            merged.setdefault(machine, {}).update(options)
    return merged


def check_plan(old: LabSpec | None, new: LabSpec, steps: Sequence[Step]) -> None:
    """SpecError for a plan a family cannot follow (a replica's source recreated...)."""
    for family in FAMILIES:
        family.check_plan(old, new, steps)


# ---------------------------------------------------------------- roles labctl moved

Held = dict[str, dict[str, str]]  # a machine's roles, each with its options
Moves = dict[str, dict[str, Held]]  # machine -> {"declared": Held, "live": Held}


def held(m: Machine) -> Held:
    """A machine's roles with their options, as the record keeps them."""
    return {r: dict(m.options.get(r, {})) for r in m.roles}


def moves(before: LabSpec, after: LabSpec, recorded: Moves) -> Moves:
    """The roles labctl has moved (a switchover), each with what the lab's
    file declared before: earlier moves carried on while the lab is still as
    they left it; a machine back to what its file declares drops out."""
    was = {m.name: held(m) for m in before.machines}
    carried = recorded if all(was.get(n) == mv["live"] for n, mv in recorded.items()) else {}
    found = dict(carried)
    for m in after.machines:
        if m.name in was and held(m) != was[m.name]:
            declared = carried.get(m.name, {}).get("declared", was[m.name])
            found[m.name] = {"declared": declared, "live": held(m)}
    return {n: mv for n, mv in found.items() if mv["declared"] != mv["live"]}


def follow(machines: Sequence[Machine], recorded: Moves) -> list[Machine]:
    """The machines built from a lab file, with the roles labctl moved since,
    while the file still declares for every moved machine what it did then.
    A file edited there wins: the user has said what they want."""
    by_name = {m.name: m for m in machines}
    if not recorded or any(
        n not in by_name or held(by_name[n]) != mv["declared"] for n, mv in recorded.items()
    ):
        return list(machines)
    out = []
    for m in machines:
        live = recorded.get(m.name, {}).get("live")
        if live is not None:
            m = replace(m, roles=tuple(live), options={r: o for r, o in live.items() if o})
        out.append(m)
    return out


def provisioners(spec: LabSpec, m: Machine) -> list[Provisioner]:
    """The role provisioners of one machine, family by family."""
    steps: list[Provisioner] = []
    for family in FAMILIES:
        if m.has(*family.roles):
            steps += family.provisioners(spec, m)
    return steps


def setup(
    home: LabHome,
    spec: LabSpec,
    on_event: OnEvent | None,
    deadline: Deadline | None = None,
) -> list[str]:
    """Each family's set-up after `up` (replication, Jenkins), within `up`'s
    deadline; their notes, in FAMILIES order. The families set up different
    servers, so they run side by side, every failure reported."""
    say, within = on_event or ignore, deadline or Deadline()
    busy = {type(f).__name__.lower(): f for f in families_of(spec) if has_setup(f)}
    if len(busy) == 1:  # on this thread, its errors (an internal one too) as they are
        return next(iter(busy.values())).setup(home, spec, say, within)
    done = fan_out(list(busy), lambda name: busy[name].setup(home, spec, say, within))
    return [note for notes in done.check().values.values() for note in notes]


def has_setup(family: RoleFamily) -> bool:
    """Whether the family does something after `up` (containerd does not)."""
    return type(family).setup is not RoleFamily.setup
