"""Role `containerd`: containerd and runc from Debian, `ctr` ready to use.

Nothing happens after `up`: `labctl ctr ...` works on any machine that has it.
"""

from __future__ import annotations

from labctl.lab.spec import LabSpec, Machine, Provisioner

ROLES: dict[str, type | None] = {"containerd": None}
KEY = None  # no lab-wide options
LabOptions = None


def provisioners(spec: LabSpec, m: Machine) -> list[Provisioner]:
    return [Provisioner("containerd", "containerd.sh")]
