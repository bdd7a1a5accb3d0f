"""Shell completion of labs, machines and targets (ops.complete)."""

from __future__ import annotations

from pathlib import Path

from labctl.lab.home import LabHome
from labctl.ops import complete

from ..fakes import install
from ..labs import topology


def test_completion_of_labs_machines_and_targets(home: Path, monkeypatch) -> None:
    install(monkeypatch, home, topology("nodes", count=2, name="demo"))
    h = LabHome(home)
    assert complete.labs(h) == ["demo"]
    assert complete.labs_and_topologies(h)[
        -1
    ] == "demo" and "nodes" in complete.labs_and_topologies(h)
    assert complete.machines(h, None) == ["node1", "node2"]
    assert complete.target(h, [], None) == ["demo", "node1", "node2"]
    assert complete.target(h, ["demo", "node1"], None) == ["node2"]
    assert complete.ssh_target(h, ["demo"], None) == ["node1", "node2"]
    assert complete.ssh_target(h, ["node1"], None) == []
    (home / "demo" / "lab.json").write_text("{broken")
    assert complete.machines(h, "demo") == []  # a broken file completes to nothing
    assert complete.labs(LabHome(home / "nowhere")) == []
