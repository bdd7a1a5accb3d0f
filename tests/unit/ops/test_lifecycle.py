"""Which lab and machines a command line names (ops.lifecycle)."""

from __future__ import annotations

import json
from pathlib import Path

from labctl.lab.home import LabHome
from labctl.lab.spec import spec_to_record
from labctl.ops.lifecycle import split_target

from ..labs import topology


def write_lab(home: Path, name: str, count: int = 2) -> LabHome:
    spec = topology("nodes", count=count, name=name)
    (home / name).mkdir(parents=True)
    (home / name / "lab.json").write_text(json.dumps(spec_to_record(spec)))
    return LabHome(home)


def test_the_lab_named_twice_is_still_the_lab(home: Path) -> None:
    """LABCTL_LAB=demo and `labctl halt demo` (a teardown script that names it too)."""
    lab_home = write_lab(home, "demo")
    assert split_target(lab_home, ["demo"], "demo") == ("demo", [])
    assert split_target(lab_home, ["demo", "node2"], "demo") == ("demo", ["node2"])
    assert split_target(lab_home, ["node1"], "demo") == ("demo", ["node1"])
