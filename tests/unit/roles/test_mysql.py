"""Replication's set-up after `up` on fake servers (tests/unit/mysql_servers.py):
replicas seeded at the same time, those of one source from one snapshot, and
every failure reported while the others finish."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from labctl.events import Event
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.local.deadline import Deadline
from labctl.roles.mysql import Mysql
from labctl.session.group import GroupFailed

from ..labs import topology
from ..mysql_servers import FakeServer, fake_servers

ROWS = [1, 2, 3]
POSITION = "0-20-105"


def fresh_lab(
    home: Path, monkeypatch: pytest.MonkeyPatch, replicas: int = 3, chain: bool = False
) -> tuple[LabSpec, dict[str, FakeServer]]:
    """A mysql-pair lab just up: every server read-only (as mysql.sh starts
    them), a primary holding ROWS at POSITION, and replicas that replicate
    from nothing and hold nothing yet."""
    spec = topology("mysql-pair", name="db", subnet="192.168.56", replicas=replicas, chain=chain)
    servers = fake_servers(home, monkeypatch, spec, position=POSITION)
    for server in servers.values():
        if server.name != "primary":
            server.source = server.applied = server.binlog_pos = ""
    for server in servers.values():
        server.dumps.clear()
        server.read_only = True
    servers["primary"].rows = list(ROWS)
    return spec, servers


def setup(home: Path, spec: LabSpec) -> tuple[list[str], list[Event]]:
    events: list[Event] = []
    notes = Mysql().setup(LabHome(home), spec, events.append, Deadline())
    return notes, events


def replicating(server: FakeServer, source: FakeServer) -> bool:
    """Seeded from `source`'s snapshot: its data, its position, its address."""
    return (
        server.source == source.ip
        and server.io == "Yes"
        and server.rows == ROWS
        and server.applied == POSITION
        and server.binlog_state == POSITION  # its own binlog starts where it stands
        and server.read_only
    )


def test_three_replicas_are_seeded_at_once_from_one_snapshot(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each replica's load waits until all three are loading: sequential
    seeding would break the barrier (after its short timeout) and fail."""
    spec, servers = fresh_lab(home, monkeypatch)
    gate = threading.Barrier(3, timeout=5)
    replicas = [servers[f"replica{i}"] for i in (1, 2, 3)]
    for replica in replicas:
        replica.gate = gate
    notes, events = setup(home, spec)
    primary = servers["primary"]
    assert notes == ["replication: primary -> replica1, replica2, replica3"]
    assert all(replicating(r, primary) for r in replicas), replicas
    assert not primary.read_only and primary.source == "" and primary.rows == ROWS
    assert sorted(primary.dumps.values()) == sorted(r.ip for r in replicas)
    # one read lock and one mysqldump for the three of them
    assert [argv[0] for argv in primary.started] == ["mysql", "mysqldump"]
    said = [(e.machine, e.text.split(" (")[0]) for e in events]
    assert [m for m, text in said if text.startswith("snapshot of primary")] == ["primary"]
    for replica in replicas:  # each line under its own machine
        assert (replica.name, "loading the dump") in said
        assert (replica.name, "replicating from primary") in said


def test_a_failing_replica_is_reported_and_the_others_finish(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, servers = fresh_lab(home, monkeypatch)
    for name in ("replica1", "replica3"):
        servers[name].fails_on = "INSERT INTO labctl_writer.acked"
    with pytest.raises(GroupFailed) as failed:
        setup(home, spec)
    assert [e.message.split(":")[0] for e in failed.value.errors] == ["replica1", "replica3"]
    assert "No space left on device" in failed.value.message
    primary = servers["primary"]
    assert replicating(servers["replica2"], primary)
    for name in ("replica1", "replica3"):
        assert servers[name].source == "" and servers[name].rows == []
    # writes stay closed until an `up` finishes the set-up, as before
    assert primary.read_only


def test_a_chain_is_seeded_down_from_its_primary(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """replica2's snapshot is taken of replica1 once replica1 holds the
    primary's rows, and so on down the chain."""
    spec, servers = fresh_lab(home, monkeypatch, chain=True)
    setup(home, spec)
    chain = [servers[n] for n in ("primary", "replica1", "replica2", "replica3")]
    for source, replica in itertools.pairwise(chain):
        assert replicating(replica, source), replica
        assert [argv[0] for argv in source.started] == ["mysql", "mysqldump"]


def test_a_replica_of_a_failed_one_is_not_seeded_and_says_why(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, servers = fresh_lab(home, monkeypatch, chain=True)
    servers["replica2"].fails_on = "INSERT INTO labctl_writer.acked"
    with pytest.raises(GroupFailed) as failed:
        setup(home, spec)
    assert [e.message for e in failed.value.errors][1:] == [
        "replica3: not seeded: its source replica2 failed"
    ]
    assert failed.value.errors[0].message.startswith("replica2: ERROR 1030")
    assert replicating(servers["replica1"], servers["primary"])
    assert servers["replica3"].source == "" and servers["replica2"].started == []


def test_a_failed_snapshot_fails_its_replicas_once_and_is_not_taken_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source refuses to list its schemas under the lock (as an SSH link
    cut by Ctrl-C would): the replica that took the snapshot reports why,
    the others that waited for it fail at once, and no second lock is taken."""
    spec, servers = fresh_lab(home, monkeypatch)
    servers["primary"].fails_on = "SELECT schema_name"
    with pytest.raises(GroupFailed) as failed:
        setup(home, spec)
    names = ["replica1", "replica2", "replica3"]  # one error each, in the lab's order
    said = dict(zip(names, (e.message for e in failed.value.errors), strict=True))
    took = [n for n, text in said.items() if text.startswith("primary: ERROR 1030")]
    assert len(took) == 1  # whichever came first; the others waited for it
    assert {n: t for n, t in said.items() if n not in took} == {
        n: f"{n}: not seeded: the snapshot of primary failed" for n in names if n not in took
    }
    assert [argv[0] for argv in servers["primary"].started] == ["mysql"]  # one lock session
    assert all(servers[f"replica{i}"].source == "" for i in (1, 2, 3))
