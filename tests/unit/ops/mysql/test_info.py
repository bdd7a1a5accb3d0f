"""What only the lab as a whole tells of its servers (ops/mysql/info.py):
a source without binlog, a binlog already purged, a MariaDB source's
replication mode told by its replica; each server's info made by hand."""

from __future__ import annotations

from dataclasses import replace

from labctl.guest.mysql import checkup as cu
from labctl.ops.mysql.info import ServerInfo, lab_findings

from ...labs import topology

SPEC = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")
FILES = [cu.BinlogFile("mysql-bin.000003", 500, 7200), cu.BinlogFile("mysql-bin.000004", 90, 0)]


def server(vm: str, server_id: int, source: str = "", **kw) -> ServerInfo:
    fields = {
        "vm": vm,
        "version": "10.11.18-MariaDB-0+deb12u1-log",
        "role": "replica" if source else "primary",
        "read_only": bool(source),
        "server_id": server_id,
        "uptime_s": 60,
        "connections": 1,
        "queries_per_s": 0.5,
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_retention_s": 864000,
        "binlog_retention_from": "binlog_expire_logs_seconds",
        "binlogs": FILES,
        "gtid_written": "0-20-9",
        "gtid_applied": "0-20-9" if source else "",
        "source_host": source,
        "source_log_file": "mysql-bin.000004" if source else "",
        "replica_mode": "gtid" if source else "",
        "seconds_behind": 0 if source else None,
        "semi_sync": "",
        "stat": cu.Stat(1, 10, 0, 20, 1, 5, 0.5),
        "schemas": [],
        "data_bytes": 0,
        "non_innodb_tables": [],
        "replicas_connected": [],
        "repl_accounts": [],
    }
    return ServerInfo(**{**fields, **kw})


def thread(host: str) -> cu.DumpThread:
    return cu.DumpThread("repl", host, "", "Master has sent all binlog to slave", 5)


def lab(**changed) -> dict[str, ServerInfo]:
    servers = {
        "primary": server(
            "primary",
            20,
            replicas_connected=[
                thread("192.168.56.21"),
                thread("192.168.56.22"),
                thread("10.9.9.9"),
            ],
        ),
        "replica1": server("replica1", 21, "192.168.56.20"),
        "replica2": server("replica2", 22, "mysql-primary"),  # named by hostname
    }
    for vm, kw in changed.items():
        servers[vm] = replace(servers[vm], **kw)
    return {i.vm: i for i in lab_findings(SPEC, list(servers.values()))}


def test_a_healthy_lab_has_nothing_to_say() -> None:
    assert all(i.findings == [] for i in lab().values())


def test_a_mariadb_sources_threads_take_their_replicas_names_and_mode() -> None:
    threads = lab()["primary"].replicas_connected
    assert [(t.replica, t.mode) for t in threads] == [
        ("replica1", "gtid"),
        ("replica2", "gtid"),
        ("", ""),  # a replica outside the lab: its mode cannot be told
    ]


def test_a_source_without_binlog_is_an_error_naming_its_replicas() -> None:
    # no dump thread runs (nothing to send): the lab's topology names them
    servers = lab(primary={"log_bin": "OFF", "replicas_connected": []})
    [said] = servers["primary"].problems
    assert said.vms == ("primary", "replica1", "replica2")
    assert said.message.startswith("binary logging is off, yet replica1, replica2 replicate")


def test_a_binlog_purged_under_a_replica_is_an_error() -> None:
    servers = lab(replica2={"source_log_file": "mysql-bin.000001"})
    [said] = servers["replica2"].problems
    assert said.message == (
        "needs mysql-bin.000001, which primary has purged: labctl mysql rejoin replica2"
    )
    assert servers["replica1"].problems == [] and servers["primary"].problems == []


def test_a_stopped_replica_on_an_old_binlog_near_the_retention_is_warned_of() -> None:
    servers = lab(
        primary={"binlog_retention_s": 9000},
        replica1={"source_log_file": "mysql-bin.000003", "seconds_behind": None},
    )
    [said] = servers["replica1"].findings
    assert said.level == "warning" and said.vms == ("replica1", "primary")
    assert said.message == (
        "primary purges mysql-bin.000003 (which it still needs) in 30 min: it keeps binlogs 2 h 30 min"
    )
    assert servers["replica2"].findings == []  # it reads the binlog being written


def test_one_server_id_twice_is_said_on_both() -> None:
    servers = lab(replica2={"server_id": 20})
    assert [f.vms for f in servers["primary"].problems] == [("primary", "replica2")]
    assert [f.vms for f in servers["replica2"].problems] == [("replica2", "primary")]
    assert servers["replica1"].problems == []
