"""Specs for unit tests, built the way `up` builds them (lab file or bundled
topology -> labfile.build), without a home, Vagrant or a provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl import providers
from labctl.lab.spec import LabSpec, Machine, Origin, Provisioner
from labctl.labfile import build as labfile
from labctl.labfile import schema, topologies


def resolved(
    provider: str = "docker",
    name: str = "t",
    subnet: str = "10.1.2",
    lab_id: str = "id",
    origin: Origin | None = None,
    box: str | None = None,
    timezone: str = "Etc/UTC",
    **kw: Any,
) -> labfile.Resolved:
    return labfile.Resolved(
        name=name,
        provider=provider,
        box=box or providers.get(provider).default_box(kw.get("libvirt_uri")),
        subnet=subnet,
        timezone=timezone,
        lab_id=lab_id,
        origin=origin or Origin("file", "lab.yaml"),
        **kw,
    )


def from_text(
    text: str,
    base_dir: Path = Path("."),
    existing: LabSpec | None = None,
    filename: str = "lab.yaml",
    **kw: Any,
) -> labfile.Built:
    """A lab file's text, built."""
    return labfile.build(schema.parse(text, filename, base_dir), resolved(**kw), existing)


LAB_KEYS = ("name", "subnet", "lab_id", "box", "timezone", "libvirt_uri", "mgmt_subnet")


def topology(
    which: str, provider: str = "docker", existing: LabSpec | None = None, **kw: Any
) -> LabSpec:
    """A bundled topology with some parameters (count=3, chain=True, ...)
    and lab-wide values (name, subnet, ...)."""
    lab_kw = {k: kw.pop(k) for k in LAB_KEYS if k in kw}
    values = topologies.params(which, {}, kw)
    text = topologies.lab_text(which, values)
    return from_text(
        text,
        existing=existing,
        filename=f"{which}.yaml",
        provider=provider,
        origin=Origin("topology", which, values),
        # a war file of a topology is given on the command line: allowed, as up does
        allowed=tuple(str(w) for w in [values.get("jenkins_war")] if w),
        **lab_kw,
    ).spec


def step(m: Machine, name: str) -> Provisioner:
    """The one provisioner of `m` named `name` (none, or two, fail the test)."""
    found = [p for p in m.provisioners if p.name == name]
    assert len(found) == 1, [p.name for p in m.provisioners]
    return found[0]
