"""The roles' table (labctl/roles/__init__.py): the families' set-up after
`up`, side by side, every failure reported."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import pytest

import labctl.roles as roles
from labctl.errors import GuestError
from labctl.events import OnEvent, info
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.local.deadline import Deadline
from labctl.roles.base import RoleFamily
from labctl.roles.containerd import Containerd
from labctl.session.group import GroupFailed

from .labs import topology


class Waiting(RoleFamily):
    """A family whose set-up waits at `gate` for the others, then says its note
    (or fails)."""

    roles: ClassVar[dict[str, type | None]] = {}

    def __init__(self, name: str, gate: threading.Barrier, fails: bool = False) -> None:
        self.name, self.gate, self.fails = name, gate, fails
        self.finished = False

    def setup(
        self, home: LabHome, spec: LabSpec, on_event: OnEvent, deadline: Deadline
    ) -> list[str]:
        self.gate.wait()  # BrokenBarrierError unless the others run meanwhile
        on_event(info(self.name, "set up"))
        if self.fails:
            raise GuestError(f"{self.name}: it broke")
        self.finished = True
        return [f"{self.name} is ready"]


def families(monkeypatch: pytest.MonkeyPatch, *found: RoleFamily) -> None:
    monkeypatch.setattr(roles, "families_of", lambda spec: list(found))


def run(home: Path) -> list[str]:
    return roles.setup(LabHome(home), topology("nodes"), None)


class First(Waiting):
    pass


class Second(Waiting):
    pass


def test_families_are_set_up_side_by_side_their_notes_in_order(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each waits until both are in (a short timeout): one after the other
    would break the barrier. Containerd, with no set-up, takes no turn."""
    gate = threading.Barrier(2, timeout=5)
    first, second = First("db", gate), Second("ci", gate)
    families(monkeypatch, Containerd(), first, second)
    assert run(home) == ["db is ready", "ci is ready"]
    assert first.finished and second.finished


def test_every_failed_family_is_reported_and_the_others_finish(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Barrier(2, timeout=5)
    first, second = First("db", gate, fails=True), Second("ci", gate)
    families(monkeypatch, first, second)
    with pytest.raises(GroupFailed, match="db: it broke"):
        run(home)
    assert second.finished


def test_a_lone_family_runs_here_its_error_as_it_is(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Barrier(1)
    families(monkeypatch, Containerd(), First("db", gate, fails=True))
    with pytest.raises(GuestError, match="db: it broke") as failed:
        run(home)
    assert type(failed.value) is GuestError
    assert not roles.has_setup(Containerd()) and roles.has_setup(roles.Mysql())
