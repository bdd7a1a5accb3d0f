"""The replication topology a lab declares (guest/mysql/topology.py), pure:
sources and trees from a spec, the edges after a switchover, the record of
moved roles, stale servers, and the lines that describe them."""

from __future__ import annotations

import pytest

from labctl import roles
from labctl.errors import SpecError
from labctl.guest.mysql import topology as topo

from ...labs import from_text, topology


@pytest.mark.parametrize(
    ("edges", "new", "after"),
    [
        # a star: the new primary takes every replica, the old one among them
        (
            {"r1": "p", "r2": "p"},
            "r1",
            {"p": "r1", "r2": "r1"},
        ),
        # a chain stays a chain with the new primary at its head
        (
            {"r1": "p", "r2": "r1", "r3": "r2"},
            "r1",
            {"p": "r1", "r2": "p", "r3": "r2"},
        ),
        (
            {"r1": "p", "r2": "r1"},
            "r2",
            {"r1": "r2", "p": "r1"},
        ),
        # a replica of the target keeps replicating from the old primary's place
        (
            {"r1": "p", "r2": "p", "r3": "r1"},
            "r1",
            {"p": "r1", "r2": "r1", "r3": "p"},
        ),
    ],
)
def test_the_target_and_the_old_primary_trade_places(
    edges: dict[str, str], new: str, after: dict[str, str]
) -> None:
    assert topo.swapped(edges, "p", new) == after
    assert new not in topo.swapped(edges, "p", new)  # the head replicates from nothing


def test_the_record_moves_only_the_mysql_roles() -> None:
    spec = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")
    after = topo.moved(spec, {"primary": "replica1", "replica2": "replica1"})
    held = {m.name: roles.held(m) for m in after.machines}
    assert held["replica1"] == {"mysql-primary": {}, "containerd": {}}
    assert held["primary"] == {"mysql-replica": {"source": "replica1"}, "containerd": {}}
    assert held["replica2"] == {"mysql-replica": {"source": "replica1"}, "containerd": {}}
    assert topo.sources(after) == {"primary": "replica1", "replica2": "replica1"}


def test_mysql_trees_follow_sources_to_their_primary() -> None:
    """`mysql check` writes on each primary and compares the servers below it."""
    text = """\
machines:
  r3: {roles: [{mysql-replica: {source: r1}}]}
  p1: {roles: [mysql-primary]}
  r1: {roles: [{mysql-replica: {source: p1}}]}
  p2: {roles: [mysql-primary]}
  r2: {roles: [{mysql-replica: {source: p2}}]}
"""
    assert topo.trees(from_text(text).spec) == {"p1": ["p1", "r3", "r1"], "p2": ["p2", "r2"]}
    chain = topology("mysql-pair", replicas=3, chain=True, containerd=False)
    assert topo.trees(chain) == {"primary": ["primary", "replica1", "replica2", "replica3"]}


def test_a_failed_primary_is_stale_and_marked_in_the_line() -> None:
    declared = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")
    after = {"primary": "replica1", "replica2": "replica1"}
    spec = topo.moved(declared, after, stale=["primary"])
    assert topo.stale(spec) == ["primary"]
    assert [m.name for m in topo.machines(spec)] == ["primary", "replica1", "replica2"]
    assert topo.sources(spec) == after
    assert topo.topology_line(spec) == "replication: replica1 -> primary (stale), replica2"
    # moved again without it: a replica like the others (rejoined)
    assert topo.stale(topo.moved(spec, topo.sources(spec))) == []


def test_edges_are_described_by_source_in_their_order() -> None:
    edges = {"r1": "p", "r2": "p", "r3": "r1"}
    assert topo.edges_line(edges) == "p -> r1, r2; r1 -> r3"
    assert topo.edges_line({}) == ""


def test_a_lab_without_mysql_machines_is_refused_with_a_hint() -> None:
    spec = from_text("machines:\n  web: {}\n").spec
    assert topo.topology_line(spec) == "mysql: no replication declared"
    with pytest.raises(SpecError, match="has no machine with a mysql role") as caught:
        topo.require(spec)
    assert "labctl mysql-pair" in (caught.value.hint or "")
