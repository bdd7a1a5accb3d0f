"""What every role family answers (`RoleFamily`: each hook, with the answer
of a family that has nothing to do there), as containerlab's node kinds do
(DEVELOPERS.md, "Adding a role")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from labctl.events import OnEvent
from labctl.local.deadline import Deadline

if TYPE_CHECKING:
    from labctl.lab.home import LabHome
    from labctl.lab.hostpaths import HostPaths
    from labctl.lab.spec import LabSpec, Machine, Provisioner
    from labctl.project.plan import Step

# (machine, key, ...) -> where the lab file says it, for InvalidField's line
Where = Callable[..., tuple[Any, ...]]
# machine -> role -> option -> value: the options a family filled in
Chosen = dict[str, dict[str, dict[str, str]]]


def not_a(spec: LabSpec, name: str, kind: str, absent: str = "") -> str:
    """Why the machine an option names will not do: it is not `kind`, or it is
    no machine of the lab at all (`absent` says what to do then)."""
    if name in spec.machine_names():
        return f"{name!r} is not {kind}"
    return f"{name!r} is no machine of the lab{absent}"


class RoleFamily:
    """A family of roles (mysql-primary and mysql-replica...). Subclasses set
    the class attributes and override the hooks their roles need."""

    # role name -> its options dataclass (None: no options); the fields,
    # defaults and docstring become the lab file's schema
    roles: ClassVar[dict[str, type | None]]
    # the family's lab-wide options in a lab file (`mysql: {gtid: true}`):
    # their key and their dataclass; None for a family without any
    key: ClassVar[str | None] = None
    lab_options: ClassVar[type | None] = None

    def complete_lab_options(self, given: dict[str, Any], reach: HostPaths) -> dict[str, Any]:
        """The lab-wide options completed (a path made absolute, where the lab
        file may reach); InvalidField when one is wrong."""
        return given

    def resolve(self, spec: LabSpec, where: Where) -> Chosen:
        """Option defaults filled in and checked across machines; InvalidField
        at `where(machine, "roles", ROLE, "option")` when one is wrong."""
        return {}

    def check_plan(self, old: LabSpec | None, new: LabSpec, steps: Sequence[Step]) -> None:
        """SpecError for a plan the roles cannot follow."""

    def provisioners(self, spec: LabSpec, m: Machine) -> list[Provisioner]:
        """What a machine of the family runs (pure)."""
        return []

    def setup(
        self, home: LabHome, spec: LabSpec, on_event: OnEvent, deadline: Deadline
    ) -> list[str]:
        """After `up`, over SSH: it runs on every `up`, so it leaves alone what
        is already right; the lines to print."""
        return []
