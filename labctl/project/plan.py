"""The plan: what `up` must do to turn the lab as recorded into the lab as
written, machine by machine. A pure function of the two specs (and of which
machines Vagrant has created), printed before it is applied.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, replace

from labctl import providers
from labctl.lab.spec import LabSpec, Machine, Provisioner

# in the order they are applied
ACTIONS = ("remove", "recreate", "add", "reload", "provision", "keep")


@dataclass(frozen=True)
class Step:
    """One machine's part of a plan. `provision`: run its provisioners again
    (after a reload, or on their own)."""

    machine: str
    action: str
    reasons: tuple[str, ...] = ()
    provision: bool = False

    @property
    def changes(self) -> bool:
        return self.action != "keep"


def _role_steps(steps: tuple[Provisioner, ...]) -> tuple[Provisioner, ...]:
    """Provisioners as far as they matter to this machine: the list of the
    lab's hosts changes with every machine added or removed, and is not a
    reason to provision the others again (they keep their /etc/hosts)."""
    return tuple(
        replace(s, env={k: v for k, v in s.env.items() if k != "LAB_HOSTS"}) for s in steps
    )


def _roles(m: Machine) -> str:
    return ", ".join(m.roles) or "(none)"


def _step(old: Machine, new: Machine, fixed: bool) -> Step:
    rebuild = [f"box {old.box} -> {new.box}"] if old.box != new.box else []
    if old.ip != new.ip:
        rebuild.append(f"ip {old.ip} -> {new.ip}")
    if old.hostname != new.hostname:
        rebuild.append(f"hostname {old.hostname} -> {new.hostname}")
    resources = []
    if old.cpus != new.cpus:
        resources.append(f"cpus {old.cpus} -> {new.cpus}")
    if old.memory != new.memory:
        resources.append(f"memory {old.memory} -> {new.memory}")
    if old.ports != new.ports:
        resources.append("forwarded ports")
    # the provider's machines keep them from their creation (containers)
    if fixed:
        rebuild += resources
        resources = []
    provisioning = []
    if set(old.roles) != set(new.roles):
        dropped = set(old.roles) - set(new.roles)
        provisioning.append(
            f"roles {_roles(old)} -> {_roles(new)}"
            + (
                " (what a dropped role installed stays: recreate to be rid of it)"
                if dropped
                else ""
            )
        )
    for role in sorted(set(old.options) | set(new.options)):
        was, now = old.options.get(role, {}), new.options.get(role, {})
        for key in sorted(set(was) | set(now)):
            if was.get(key) != now.get(key) and role in new.roles and role in old.roles:
                provisioning.append(f"{role} {key} {was.get(key)} -> {now.get(key)}")
    if _role_steps(old.provisioners) != _role_steps(new.provisioners):
        before = {s.name: s for s in _role_steps(old.provisioners)}
        after = {s.name: s for s in _role_steps(new.provisioners)}
        if set(old.roles) == set(new.roles):
            names = [n for n in after if before.get(n) != after[n]]
            names += [n for n in before if n not in after]
            provisioning.append("provisioners changed: " + ", ".join(dict.fromkeys(names)))
    if rebuild:
        return Step(new.name, "recreate", tuple(rebuild + resources + provisioning))
    if resources:
        return Step(
            new.name, "reload", tuple(resources + provisioning), provision=bool(provisioning)
        )
    if provisioning:
        return Step(new.name, "provision", tuple(provisioning), provision=True)
    return Step(new.name, "keep")


def _provisioned(step: Step, why: str) -> Step:
    """A kept or reloaded machine made to run its provisioners too."""
    if step.action == "keep":
        return Step(step.machine, "provision", (why,), provision=True)
    if step.action == "reload" and not step.provision:
        return replace(step, reasons=(*step.reasons, why), provision=True)
    return step


def make(
    old: LabSpec | None,
    new: LabSpec,
    created: Collection[str],
    unprovisioned: Collection[str] = (),
) -> list[Step]:
    """Every machine of both labs, with what happens to it. `unprovisioned`:
    machines whose provisioning an earlier `up` began and did not finish
    (Vagrant marks a machine provisioned before its provisioners run)."""
    before = {m.name: m for m in old.machines} if old else {}
    steps = []
    fixed = providers.get(new.provider).resources_fixed
    for m in new.machines:
        was = before.get(m.name)
        if was is None:
            steps.append(Step(m.name, "add", ("new machine",)))
        elif m.name not in created:
            steps.append(Step(m.name, "add", ("not created yet",)))
        else:
            steps.append(_step(was, m, fixed))
    # a machine kept at a new address or name: the others' /etc/hosts must follow
    moved = [
        m.name
        for m in new.machines
        if m.name in before and (before[m.name].ip, before[m.name].hostname) != (m.ip, m.hostname)
    ]
    if moved:
        why = f"the lab's hosts changed ({', '.join(moved)} moved)"
        steps = [_provisioned(s, why) for s in steps]
    cut = {n for n in unprovisioned if n in created}
    if cut:
        steps = [
            _provisioned(s, "its provisioning was cut short") if s.machine in cut else s
            for s in steps
        ]
    names = set(new.machine_names())
    for m in before.values():
        if m.name not in names:
            why = "gone from the lab file" if m.name in created else "gone (never created)"
            steps.append(Step(m.name, "remove", (why,)))
    return sorted(steps, key=lambda s: ACTIONS.index(s.action))


def as_rows(steps: list[Step]) -> list[dict[str, object]]:
    """The plan for --json."""
    return [{**asdict(s), "reasons": list(s.reasons)} for s in steps]
