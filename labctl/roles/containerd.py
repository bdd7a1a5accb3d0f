"""Role `containerd`: containerd and runc from Debian, `ctr` ready to use.

Nothing happens after `up`: `labctl ctr ...` works on any machine that has it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labctl.events import OnEvent
from labctl.lab.spec import LabSpec, Machine, Provisioner
from labctl.local.deadline import Deadline

if TYPE_CHECKING:
    from labctl.lab.home import LabHome

ROLES: dict[str, type | None] = {"containerd": None}
KEY = None  # no lab-wide options
LabOptions = None


def resolve(
    spec: LabSpec, where: Callable[..., tuple[Any, ...]]
) -> dict[str, dict[str, dict[str, str]]]:
    """No options to fill in."""
    return {}


def check_plan(old: LabSpec | None, new: LabSpec, steps: Any) -> None:
    """Nothing to refuse."""


def provisioners(spec: LabSpec, m: Machine) -> list[Provisioner]:
    return [Provisioner("containerd", "containerd.sh")]


def setup(
    home: LabHome,
    spec: LabSpec,
    on_event: OnEvent | None,
    deadline: Deadline,
) -> list[str]:
    return []
