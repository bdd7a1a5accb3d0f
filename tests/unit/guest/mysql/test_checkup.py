"""A server's check-up: each figure from captured output (MariaDB 10.11 from a
lab's guest; MySQL 8 written by hand, as its files say), and the findings as
data."""

from __future__ import annotations

import pytest

from labctl.guest.mysql import checkup as cu
from labctl.guest.mysql import rules as mysql

from ...fakes import data


def tab(name: str) -> list[dict[str, str]]:
    return mysql.parse_tab(data(f"mysql/{name}"))


def pairs(name: str) -> dict[str, str]:
    return {r["Variable_name"]: r["Value"] for r in tab(name)}


# ---------------------------------------------------------------- figures


def test_the_backslash_s_figures_of_mysql8() -> None:
    assert cu.stat(pairs("mysql8-status.tab.txt")) == cu.Stat(
        threads=7,
        questions=1843227,
        slow_queries=4,
        opens=689,
        flush_tables=3,
        open_tables=612,
        queries_per_s_avg=round(1843227 / 424537, 3),
    )


def test_the_backslash_s_figures_of_mariadb() -> None:
    status = pairs("mariadb-status.tab.txt")
    figures = cu.stat(status)
    assert figures.threads >= 1 and figures.questions > 0 and figures.opens > 0
    assert figures.open_tables == int(status["Open_tables"])
    assert figures.flush_tables == int(status["Com_flush"])  # MariaDB has no Flush_commands
    assert figures.queries_per_s_avg == round(int(status["Questions"]) / int(status["Uptime"]), 3)


def test_a_missing_counter_is_zero_and_no_uptime_divides_by_one() -> None:
    assert cu.stat({"Questions": "12"}) == cu.Stat(0, 12, 0, 0, 0, 0, 12.0)


@pytest.mark.parametrize(
    ("variables", "kept"),
    [
        (
            {"binlog_expire_logs_seconds": "2592000", "expire_logs_days": "0"},
            (2592000, "binlog_expire_logs_seconds"),
        ),
        # MySQL 8 with both set: the seconds win
        (
            {"binlog_expire_logs_seconds": "3600", "expire_logs_days": "7"},
            (3600, "binlog_expire_logs_seconds"),
        ),
        # a server with only the days (MySQL 5.7, MariaDB before 10.6)
        ({"expire_logs_days": "10"}, (864000, "expire_logs_days")),
        (
            {"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.5"},
            (43200, "expire_logs_days"),
        ),
        ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0"}, (0, "")),
        ({}, (0, "")),
    ],
)
def test_binlog_retention(variables: dict[str, str], kept: tuple[int, str]) -> None:
    assert cu.retention(variables) == cu.Retention(*kept)


def test_binlog_retention_as_captured() -> None:
    assert cu.retention(pairs("mysql8-binlog-variables.tab.txt")) == cu.Retention(
        2592000, "binlog_expire_logs_seconds"
    )
    # Debian's MariaDB keeps ten days (its 50-server.cnf: expire_logs_days = 10)
    assert cu.retention(pairs("mariadb-binlog-variables.tab.txt")) == cu.Retention(
        864000, "binlog_expire_logs_seconds"
    )


def test_binlog_files_with_their_ages() -> None:
    rows = tab("mysql8-binary-logs.tab.txt")
    paths = cu.binlog_paths("/var/lib/mysql/binlog", rows)
    assert paths == [f"/var/lib/mysql/binlog.00000{n}" for n in (1, 2, 3)]
    ages = cu.ages("1764670000\n1764600000\n1764660000\n1764670000\n", paths)
    assert cu.binlog_files(rows, ages) == [
        cu.BinlogFile("binlog.000001", 3091, 70000),
        cu.BinlogFile("binlog.000002", 1843, 10000),
        cu.BinlogFile("binlog.000003", 157, 0),
    ]
    # a stat that failed (a file purged meanwhile) gives no ages, not wrong ones
    assert cu.ages("1764670000\n1764600000\n", paths) == {}
    assert cu.binlog_files(rows, {})[0].age_s is None


def test_mariadb_binlog_files_as_captured() -> None:
    rows = tab("mariadb-binary-logs.tab.txt")
    variables = pairs("mariadb-binlog-variables.tab.txt")
    paths = cu.binlog_paths(variables["log_bin_basename"], rows)
    assert all(p.startswith("/var/lib/mysql/mysql-bin.") for p in paths)
    times = cu.epoch_lines(data("mysql/mariadb-file-times.txt"))
    assert len(times) == len(paths) + 1 and times[0] >= max(times[1:])
    ages = cu.ages(data("mysql/mariadb-file-times.txt"), paths)
    found = cu.binlog_files(rows, ages)
    assert [f.name for f in found] == [r["Log_name"] for r in rows]
    assert all(f.bytes > 0 and f.age_s is not None for f in found)


def test_dump_threads_and_their_mode() -> None:
    mysql8 = cu.dump_threads(tab("mysql8-dump-threads.tab.txt"), mysql=True)
    assert [(d.user, d.host, d.mode) for d in mysql8] == [
        ("repl", "192.168.56.21", "gtid"),
        ("repl", "192.168.56.22", "file"),
    ]
    assert mysql8[0].state == "Source has sent all binlog to replica; waiting for more updates"
    assert mysql8[0].seconds == 800846
    # MariaDB's thread reads `Binlog Dump` either way: only the replica can tell
    mariadb = cu.dump_threads(tab("mariadb-dump-threads.tab.txt"), mysql=False)
    assert len(mariadb) == 2 and {d.mode for d in mariadb} == {""}
    assert all(d.user == "repl" and d.host.startswith("192.168.56.") for d in mariadb)
    assert all(":" not in d.host for d in mariadb)


def test_replication_accounts_leave_out_local_ones() -> None:
    accounts = cu.repl_accounts(tab("mysql8-repl-accounts.tab.txt"))
    assert [a.label for a in accounts] == ["myuser@%", "repl@192.168.56.%"]
    captured = cu.repl_accounts(tab("mariadb-repl-accounts.tab.txt"))
    assert [a.label for a in captured] == ["repl@192.168.56.%"]


def test_tables_not_innodb() -> None:
    assert cu.tables(tab("mysql8-non-innodb.tab.txt")) == [
        cu.Table("app", "legacy_log", "MyISAM"),
        cu.Table("app", "sessions", "MEMORY"),
    ]
    assert cu.tables(tab("mariadb-non-innodb.tab.txt")) == [cu.Table("app", "legacy", "MyISAM")]


def test_the_statements_quote_what_they_name() -> None:
    assert cu.status_statement(["Uptime", "x'y"]) == (
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'x\\'y')"
    )
    assert "NOT IN ('mysql', 'sys')" in cu.non_innodb_statement(["mysql", "sys"])


# ---------------------------------------------------------------- findings


def test_a_myisam_table_is_a_warning_naming_it() -> None:
    said = cu.engine_findings("replica1", cu.tables(tab("mysql8-non-innodb.tab.txt")))
    assert [(f.level, f.vms) for f in said] == [("warning", ("replica1",))] * 2
    assert said[0].message.startswith("app.legacy_log is MyISAM: not crash-safe for replication")
    assert "locks the whole table" in said[0].message
    assert said[1].message == "app.sessions is MEMORY, not InnoDB: not transactional"


def test_a_grant_from_any_host_is_a_warning() -> None:
    accounts = cu.repl_accounts(tab("mysql8-repl-accounts.tab.txt"))
    said = cu.account_findings("primary", accounts, "192.168.56")
    assert said == [
        cu.warning(
            "primary",
            "myuser@% may replicate from any host: grant it the lab's subnet "
            "(myuser@'192.168.56.%')",
        )
    ]


def test_a_duplicate_server_id_is_an_error_on_both() -> None:
    said = cu.duplicate_ids({"primary": 20, "replica1": 20, "replica2": 22})
    assert [(f.level, f.vms) for f in said] == [
        ("error", ("primary", "replica1")),
        ("error", ("replica1", "primary")),
    ]
    assert said[0].message.startswith("server_id 20 is on both primary and replica1")
    assert cu.duplicate_ids({"primary": 20, "replica1": 21}) == []


def test_a_source_without_binlog_is_an_error() -> None:
    said = cu.log_bin_finding("primary", "OFF", ["replica1"])
    assert said is not None and said.level == "error" and said.vms == ("primary", "replica1")
    assert cu.log_bin_finding("primary", "ON", ["replica1"]) is None
    assert cu.log_bin_finding("alone", "OFF", []) is None


FILES = [cu.BinlogFile("mysql-bin.000001", 100, 3000), cu.BinlogFile("mysql-bin.000002", 90, 5)]
HOUR = cu.Retention(3600, "binlog_expire_logs_seconds")
DAYS = cu.Retention(864000, "expire_logs_days")


@pytest.mark.parametrize(
    ("keeps", "needed", "lag", "level", "says"),
    [
        # a stopped replica still reading the old file: purged in 600 s
        (
            HOUR,
            "mysql-bin.000001",
            None,
            "warning",
            "primary purges mysql-bin.000001 (which it still needs) in 10 min: it keeps binlogs 1 h",
        ),
        # the file it needs is gone already
        (
            DAYS,
            "mysql-bin.000000",
            None,
            "error",
            "needs mysql-bin.000000, which primary has purged: labctl mysql rejoin replica1",
        ),
        # reading the newest file, yet its lag is within the margin of the retention
        (
            HOUR,
            "mysql-bin.000002",
            2000,
            "warning",
            "2000 s behind primary, which keeps binlogs only 1 h (the margin: 1 h): a replica stopped or behind longer cannot catch up",
        ),
        (DAYS, "mysql-bin.000001", 2000, None, ""),
        (cu.Retention(0, ""), "mysql-bin.000001", 10**9, None, ""),
    ],
)
def test_retention_against_what_a_replica_still_needs(
    keeps: cu.Retention, needed: str, lag: int | None, level: str | None, says: str
) -> None:
    found = cu.purge_finding("replica1", "primary", keeps, needed, FILES, lag)
    if level is None:
        assert found is None
    else:
        assert found == cu.Finding(level, ("replica1", "primary"), says)


def test_the_margin_is_the_callers() -> None:
    assert cu.purge_finding("r", "p", HOUR, "mysql-bin.000001", FILES, None, margin_s=60) is None
    assert cu.purge_finding("r", "p", HOUR, "mysql-bin.000001", FILES, None, margin_s=700)


@pytest.mark.parametrize(
    ("age", "says"),
    [(3000, "10 min"), (1803, "29 min 57 s"), (3599, "1 s"), (4000, "0 s")],
)
def test_the_time_left_is_said_in_two_units_at_most(age: int, says: str) -> None:
    files = [cu.BinlogFile("mysql-bin.000001", 1, age), FILES[1]]
    found = cu.purge_finding("r", "p", HOUR, "mysql-bin.000001", files, None)
    assert found is not None and f" in {says}: it keeps binlogs 1 h" in found.message
