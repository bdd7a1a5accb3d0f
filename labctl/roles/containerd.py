"""Role `containerd`: containerd and runc from Debian, `ctr` ready to use.

Nothing happens after `up`: `labctl ctr ...` works on any machine that has it.
"""

from __future__ import annotations

from typing import ClassVar

from labctl.lab.spec import LabSpec, Machine, Provisioner
from labctl.roles.base import RoleFamily


class Containerd(RoleFamily):
    """One provisioner, nothing to check nor to set up."""

    roles: ClassVar[dict[str, type | None]] = {"containerd": None}  # no lab-wide options

    def provisioners(self, spec: LabSpec, m: Machine) -> list[Provisioner]:
        return [Provisioner("containerd", "containerd.sh")]
