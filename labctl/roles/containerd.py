"""Role `containerd`: containerd and runc from Debian, `ctr` ready to use.

Nothing happens after `up`: `labctl ctr ...` works on any machine that has it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labctl.deadline import Deadline
from labctl.spec import LabSpec, Machine, Provisioner

if TYPE_CHECKING:
    from labctl.home import LabHome
    from labctl.vagrant import Event

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
    on_event: Callable[[Event], None] | None,
    deadline: Deadline,
) -> list[str]:
    return []
