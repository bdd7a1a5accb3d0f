"""Live replication's pure part: the order replicas can be seeded in (the
seeding itself: tests/unit/roles/test_mysql.py, on fake servers)."""

from __future__ import annotations

from labctl.guest.mysql.replication import waves


def test_replicas_are_seeded_source_first_those_of_ready_sources_together() -> None:
    edges = {"r1": "p", "r2": "r1", "r3": "p", "r4": "r2", "r5": "q"}
    assert waves(edges) == [["r1", "r3", "r5"], ["r2"], ["r4"]]


def test_a_replica_of_a_server_seeded_elsewhere_is_in_the_first_wave() -> None:
    # r1 replicates already: it is no edge here, so r2 need not wait for it
    assert waves({"r2": "r1", "r3": "r1"}) == [["r2", "r3"]]
    assert waves({}) == []
