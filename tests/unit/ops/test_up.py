"""Applying a plan (ops.up.apply.apply) with a driver that records what it
is asked: which machines are destroyed, brought up, reloaded, provisioned,
in which order, and when the record is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.errors import VagrantError
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.ops.up.apply import apply
from labctl.ops.up.prepare import Prepared
from labctl.project import plan, render

from ..labs import from_text

THREE = "machines:\n  va: {}\n  vb: {}\n  vc: {}\n"


class FakeDriver:
    """Stands in for VagrantDriver; `fail_on` makes one call raise as Vagrant would."""

    def __init__(self, calls: list[tuple[str, Any]], fail_on: str = "") -> None:
        self.calls = calls
        self.fail_on = fail_on

    def _record(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if name == self.fail_on:
            raise VagrantError(f"vagrant {name} failed")

    def destroy(self, machines: list[str]) -> None:
        self._record("destroy", list(machines))

    def up(self, provider: str | None = None) -> None:
        self._record("up", provider)

    def reload(self, machines: list[str], provision: bool | None = None) -> None:
        self._record("reload", (list(machines), provision))

    def provision(self, machines: list[str]) -> None:
        self._record("provision", list(machines))


def make_lab(home: LabHome, spec: LabSpec, created: list[str]) -> Path:
    root = home.paths(spec.name).root
    home.root.mkdir(parents=True, exist_ok=True)
    render.write_tree(render.lab_files(spec, "old\n"), root)
    for m in created:
        ids = root / ".vagrant" / "machines" / m / "docker"
        ids.mkdir(parents=True)
        (ids / "id").write_text(f"id-{m}")
    return root


def prepared(old: LabSpec | None, text: str, created: list[str]) -> Prepared:
    built = from_text(text, existing=old)
    steps = plan.make(old, built.spec, set(created))
    files = render.lab_files(built.spec, built.normalised, built.scripts)
    return Prepared(built.spec, old, steps, files, frozenset(created))


def record(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "lab.json").read_text())
    return data


@pytest.fixture
def lab(tmp_path: Path) -> tuple[LabHome, LabSpec, Path]:
    home = LabHome(tmp_path / "labs")
    old = from_text(THREE).spec
    return home, old, make_lab(home, old, ["va", "vb", "vc"])


def test_only_the_planned_machines_are_touched_in_order(lab) -> None:
    home, old, root = lab
    calls: list[tuple[str, Any]] = []
    change = prepared(
        old, "machines:\n  va: {}\n  vb: {roles: [containerd]}\n  vd: {}\n", ["va", "vb", "vc"]
    )
    apply(home, change, FakeDriver(calls), validate=lambda p: calls.append(("validate", p.name)))  # type: ignore[arg-type]
    assert [c[0] for c in calls] == ["validate", "destroy", "up", "provision"]
    assert calls[1] == ("destroy", ["vc"])  # with the Vagrantfile that still defines it
    assert calls[3] == ("provision", ["vb"])
    assert [m["name"] for m in record(root)["machines"]] == ["va", "vb", "vd"]
    assert "'vd'" in (root / "Vagrantfile").read_text()


def test_a_plan_cut_short_keeps_the_old_record(lab) -> None:
    home, old, root = lab
    calls: list[tuple[str, Any]] = []
    change = prepared(
        old, "machines:\n  va: {}\n  vb: {roles: [containerd]}\n  vc: {}\n", ["va", "vb", "vc"]
    )
    with pytest.raises(VagrantError):
        apply(home, change, FakeDriver(calls, fail_on="up"), validate=lambda p: None)  # type: ignore[arg-type]
    assert "provision" not in [c[0] for c in calls]
    # the record still says b has no role, so the next plan provisions it again
    assert [m["roles"] for m in record(root)["machines"]] == [[], [], []]
    again = from_text("machines:\n  va: {}\n  vb: {roles: [containerd]}\n  vc: {}\n", existing=old)
    steps = {s.machine: s.action for s in plan.make(old, again.spec, {"va", "vb", "vc"})}
    assert steps["vb"] == "provision"


def test_files_that_do_not_validate_destroy_nothing(lab) -> None:
    home, old, root = lab
    calls: list[tuple[str, Any]] = []
    change = prepared(old, "machines:\n  va: {}\n", ["va", "vb", "vc"])

    def refuse(path: Path) -> None:
        raise VagrantError("the Vagrantfile does not validate")

    with pytest.raises(VagrantError):
        apply(home, change, FakeDriver(calls), validate=refuse)  # type: ignore[arg-type]
    assert calls == []
    assert [m["name"] for m in record(root)["machines"]] == ["va", "vb", "vc"]
    assert not list(home.root.glob(".render-*"))  # the staged files are gone too


def test_an_unchanged_lab_is_only_brought_up(lab) -> None:
    home, old, root = lab
    calls: list[tuple[str, Any]] = []
    same = prepared(old, THREE, ["va", "vb", "vc"])
    root.joinpath("lab.yaml").write_text(same.files["lab.yaml"])  # type: ignore[index]
    apply(home, same, FakeDriver(calls), validate=lambda p: calls.append(("validate", p)))  # type: ignore[arg-type]
    assert calls == [("up", "docker")]


def test_a_machine_created_but_never_recorded_is_provisioned(tmp_path: Path) -> None:
    """An `up` cut short after Vagrant made a machine: the record lacks it, so
    it is planned as new, but Vagrant would not provision it again by itself."""
    home = LabHome(tmp_path / "labs")
    old = from_text("machines:\n  va: {}\n").spec
    make_lab(home, old, ["va", "vb"])
    calls: list[tuple[str, Any]] = []
    change = prepared(old, "machines:\n  va: {}\n  vb: {}\n", ["va", "vb"])
    apply(home, change, FakeDriver(calls), validate=lambda p: None)  # type: ignore[arg-type]
    assert calls[-1] == ("provision", ["vb"])
