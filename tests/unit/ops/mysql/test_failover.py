"""`labctl mysql failover` and `rejoin` through fake servers: when the
primary counts as gone, which replica takes its place (the one that has
received the most, after applying its relay log), the statements, what may
have been lost, and the failed primary kept out until it rejoins."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import GuestError, SpecError
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.lab.home import LabHome
from labctl.ops.mysql import failover, rejoin, switchover

from ...fakes import install
from ...mysql_servers import lab, writes


def stopped(home: Path, monkeypatch: pytest.MonkeyPatch, servers: dict, *names: str) -> None:
    """The lab's machines `names` not running (halted): no transport for them."""
    spec = LabHome(home).load("db")
    install(
        monkeypatch,
        home,
        spec,
        [s.transport() for n, s in servers.items() if n not in names],
        dict.fromkeys(names, "stopped"),
    )


def test_failover_after_the_primary_halted(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    r1, r2 = servers["replica1"], servers["replica2"]
    r1.io = r2.io = "Connecting"
    r1.applied, r2.applied = "0-20-103", "0-20-105"  # replica2 received the most
    r2.relay_behind = 2  # and still has some of it to apply
    monkeypatch.setattr(failover, "DRAIN_EVERY", 0.01)
    stopped(home, monkeypatch, servers, "primary")
    done = failover.failover(LabHome(home), "db")
    assert (done.old, done.new) == ("primary", "replica2")
    assert done.why == "primary is not running (docker state: stopped)"
    assert (done.old_position, done.known_from) == ("0-20-105", "what its replicas received")
    assert done.new_position == "0-20-105" and done.may_be_lost == []
    assert done.edges == {"primary": "replica2", "replica1": "replica2"}
    # each replica stops receiving first, then applies what it has
    for r in (r1, r2):
        assert r.log.index("STOP SLAVE IO_THREAD") < r.log.index(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('gtid_slave_pos')"
        )
    assert r2.relay_behind == 0  # waited for
    order = writes(servers)
    assert order[-1] == "replica2: SET GLOBAL read_only = OFF"
    assert "replica2: RESET SLAVE ALL" in order
    assert any(
        w.startswith("replica1: CHANGE MASTER TO MASTER_HOST='192.168.56.22'") for w in order
    )
    spec = LabHome(home).load("db")
    assert topo.stale(spec) == ["primary"]
    assert topo.sources(spec) == {"primary": "replica2", "replica1": "replica2"}
    assert [m.name for m in spec.with_role(topo.PRIMARY)] == ["replica2"]


def test_a_primary_that_answers_is_no_failover(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    with pytest.raises(GuestError, match="primary answers, takes writes and replica1, replica2"):
        failover.failover(LabHome(home), "db")
    assert writes(servers) == []


def test_a_primary_cut_off_is_fenced_and_what_it_had_is_reported(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    p, r1, r2 = servers["primary"], servers["replica1"], servers["replica2"]
    p.read_only = False
    p.binlog_pos = "0-20-110"  # it took 5 writes its replicas never received
    r1.io = r2.io = "Connecting"
    done = failover.failover(LabHome(home), "db")
    assert done.why == "primary is cut off from its replicas (fenced: read-only now)"
    assert writes(servers)[0] == "primary: SET GLOBAL read_only = ON"  # before anything else
    assert (done.old_position, done.known_from) == ("0-20-110", "primary")
    assert done.may_be_lost == ["0-20-106..110 (5)"]
    assert done.new == "replica1"  # equals: the first


def test_a_restarted_primary_read_only_counts_as_gone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["primary"].read_only = True
    done = failover.failover(LabHome(home), "db", "replica2")
    assert done.why == "primary is read-only (restarted, or fenced)" and done.new == "replica2"


def test_a_less_advanced_target_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    servers["replica1"].applied = "0-20-90"
    stopped(home, monkeypatch, servers, "primary")
    with pytest.raises(GuestError, match="replica1 has applied less than replica2") as err:
        failover.failover(LabHome(home), "db", "replica1")
    assert err.value.hint == "--to replica2, or leave --to out"
    assert topo.stale(LabHome(home).load("db")) == []


def test_rejoin_by_gtid_when_nothing_diverged(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    stopped(home, monkeypatch, servers, "primary")
    failover.failover(LabHome(home), "db", "replica1")
    stopped(home, monkeypatch, servers)  # the old primary is back
    p = servers["primary"]
    p.binlog_state = "0-20-105"
    servers["replica1"].binlog_state = "0-20-105,0-21-3"
    with pytest.raises(SpecError, match="replica1 is the primary: rejoin is for a failed primary"):
        rejoin.rejoin(LabHome(home), "db", "replica1")
    done = rejoin.rejoin(LabHome(home), "db", "primary")
    assert (done.how, done.diverged, done.source) == ("replicates again", [], "replica1")
    assert p.source == "192.168.56.21" and p.read_only
    assert "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos" in p.log
    spec = LabHome(home).load("db")
    assert topo.stale(spec) == [] and topo.sources(spec)["primary"] == "replica1"


def test_rejoin_rebuilds_a_diverged_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    stopped(home, monkeypatch, servers, "primary")
    failover.failover(LabHome(home), "db", "replica1")
    stopped(home, monkeypatch, servers)
    servers["primary"].binlog_state = "0-20-110"  # writes nobody received
    servers["replica1"].binlog_state = "0-20-105,0-21-3"
    seeded = []

    def seed(source, replica, ip, password, gtid, say, fresh=False):
        seeded.append((source.name, replica.name, ip, gtid, fresh))
        servers["primary"].source = ip

    monkeypatch.setattr(repl, "seed", seed)
    done = rejoin.rejoin(LabHome(home), "db", "primary")
    assert done.how == "rebuilt from a snapshot" and done.diverged == ["0-20-106..110 (5)"]
    assert seeded == [("replica1", "primary", "192.168.56.21", True, True)]


def test_gtid_histories_compared() -> None:
    assert mysql.missing_from("0-20-105", "0-20-105,0-21-9") == []
    assert mysql.missing_from("0-20-110,1-20-2", "0-20-105") == [
        "0-20-106..110 (5)",
        "1-20-1..2 (2)",
    ]
    assert mysql.missing_from("u1:1-10", "u1:1-10,u2:1-3") == []
    assert mysql.missing_from("U1:1-12", "u1:1-10") == ["u1:11-12 (2)"]


def test_a_stale_server_is_named_and_kept_out(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failover: `mysql role` says stale, `verify` names the way
    back (exit 1 until then), a switchover leaves the stale server alone."""
    from labctl.ops.mysql import observe as ops

    servers = lab(home, monkeypatch)
    stopped(home, monkeypatch, servers, "primary")
    failover.failover(LabHome(home), "db", "replica1")
    stopped(home, monkeypatch, servers)  # back, read-only, replicating from nothing
    rows = {o.vm: o.value.role for o in ops.roles(LabHome(home), "db") if o.value}
    # (the fakes list no connected replicas: replica1 looks standalone here)
    assert (rows["primary"], rows["replica2"]) == ("stale (was primary)", "replica")
    edges, down = ops.verify(LabHome(home), "db")
    assert down == []
    assert [(e.replica, e.source, e.status) for e in edges] == [
        ("primary", "replica1", "stale"),
        ("replica2", "replica1", "ok"),
    ]
    assert edges[0].detail == "a failed primary: labctl mysql rejoin primary"
    servers["primary"].log.clear()
    done = switchover.switchover(LabHome(home), "db", "replica2")
    assert done.edges == {"replica1": "replica2"}
    assert servers["primary"].log == []  # never asked
    spec = LabHome(home).load("db")
    assert topo.stale(spec) == ["primary"] and topo.sources(spec)["primary"] == "replica2"
