"""MySQL/MariaDB: statements by version, parsers on captured output, role rules."""

from __future__ import annotations

import pytest

from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql.rules import mask_secrets
from labctl.guest.mysql.session import dump_argv

from ...fakes import data

MARIADB = mysql.Server("mariadb", (10, 11, 6))
MYSQL_8021 = mysql.Server("mysql", (8, 0, 21))
MYSQL_8022 = mysql.Server("mysql", (8, 0, 22))
MYSQL_8036 = mysql.Server("mysql", (8, 0, 36))
MYSQL_84 = mysql.Server("mysql", (8, 4, 0))


def tab(name: str) -> list[dict[str, str]]:
    return mysql.parse_tab(data(f"mysql/{name}"))


def vertical(name: str) -> list[dict[str, str]]:
    return mysql.parse_vertical(data(f"mysql/{name}"))


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("10.11.6-MariaDB-0+deb12u1", MARIADB),
        ("8.0.36-0ubuntu0.22.04.1", MYSQL_8036),
        ("8.4.0", MYSQL_84),
    ],
)
def test_parse_version(text: str, server: mysql.Server) -> None:
    assert mysql.parse_version(text) == server


def test_parse_version_of_the_captured_server() -> None:
    assert mysql.parse_version(tab("mariadb-version.tab.txt")[0]["version"]).flavor == "mariadb"


@pytest.mark.parametrize(
    ("server", "status", "start", "replicas", "binlog"),
    [
        (MARIADB, "SHOW SLAVE STATUS", "START SLAVE", "SHOW SLAVE HOSTS", "SHOW MASTER STATUS"),
        (MYSQL_8021, "SHOW SLAVE STATUS", "START SLAVE", "SHOW SLAVE HOSTS", "SHOW MASTER STATUS"),
        (MYSQL_8022, "SHOW REPLICA STATUS", "START REPLICA", "SHOW REPLICAS", "SHOW MASTER STATUS"),
        (
            mysql.Server("mysql", (8, 2, 0)),
            "SHOW REPLICA STATUS",
            "START REPLICA",
            "SHOW REPLICAS",
            "SHOW BINARY LOG STATUS",
        ),
        (
            MYSQL_84,
            "SHOW REPLICA STATUS",
            "START REPLICA",
            "SHOW REPLICAS",
            "SHOW BINARY LOG STATUS",
        ),
    ],
)
def test_statements_by_version(
    server: mysql.Server, status: str, start: str, replicas: str, binlog: str
) -> None:
    assert (
        server.replica_status(),
        server.start_replica(),
        server.replicas(),
        server.binlog_status(),
    ) == (status, start, replicas, binlog)


def test_change_source_by_version() -> None:
    maria = MARIADB.change_source("192.168.56.20", "pw", "mysql-bin.000001", 328)
    assert maria.startswith(
        "CHANGE MASTER TO MASTER_HOST='192.168.56.20', MASTER_USER='repl', MASTER_PASSWORD='pw'"
    )
    assert "MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=328" in maria
    assert "MASTER_CONNECT_RETRY=2" in maria and "PUBLIC_KEY" not in maria
    old = mysql.Server("mysql", (8, 0, 22)).change_source("h", "pw", "f", 4)
    assert old.startswith("CHANGE MASTER TO") and "GET_MASTER_PUBLIC_KEY=1" in old
    new = MYSQL_8036.change_source("h", "pw", "binlog.000002", 1307)
    assert new.startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST='h'")
    assert (
        "GET_SOURCE_PUBLIC_KEY=1" in new
        and "SOURCE_LOG_POS=1307" in new
        and "SOURCE_CONNECT_RETRY=2" in new
    )
    assert "SOURCE_AUTO_POSITION=1" in MYSQL_8036.change_source("h", "pw", gtid=True)
    assert "MASTER_USE_GTID=slave_pos" in MARIADB.change_source("h", "pw", gtid=True)
    assert "LOG_FILE" not in MARIADB.change_source("h", "pw", gtid=True)


def test_other_statements() -> None:
    assert MYSQL_84.reset_gtids() == "RESET BINARY LOGS AND GTIDS"
    assert MYSQL_8036.reset_gtids() == "RESET MASTER"
    assert MYSQL_8036.gtid_binlog_variable() == "gtid_executed"
    assert MARIADB.gtid_binlog_variable() == "gtid_binlog_pos"
    assert (
        MARIADB.reset_replica() == "RESET SLAVE ALL"
        and MYSQL_8036.reset_replica() == "RESET REPLICA ALL"
    )


def test_repl_user_is_limited_to_the_subnet() -> None:
    create, alter, grant = MARIADB.create_repl_user("192.168.56", "s3cret")
    assert create == "CREATE USER IF NOT EXISTS 'repl'@'192.168.56.%' IDENTIFIED BY 's3cret'"
    assert grant == "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'192.168.56.%'"
    assert "'repl'@'192.168.56.%'" in alter


def test_quote() -> None:
    assert mysql.quote("it's \\ x") == "'it\\'s \\\\ x'"
    assert mysql.quote_ident("a`b") == "`a``b`"


def test_dump_never_uses_master_data() -> None:
    for server in (MARIADB, MYSQL_8036):
        argv = dump_argv(server, ["app"])
        assert not any("master-data" in a or "source-data" in a for a in argv)
        assert argv[-2:] == ["--databases", "app"]
    assert "--set-gtid-purged=OFF" in dump_argv(MYSQL_8036, ["app"])
    assert "--set-gtid-purged=OFF" not in dump_argv(MARIADB, ["app"])


# ---------------------------------------------------------------- parsers


def test_tab_and_vertical_agree() -> None:
    (t,) = tab("mariadb-replica-status.tab.txt")
    (v,) = vertical("mariadb-replica-status.G.txt")
    for key in (
        "Master_Host",
        "Slave_IO_Running",
        "Slave_SQL_Running",
        "Seconds_Behind_Master",
        "Master_Log_File",
    ):
        assert t[key] == v[key]


def test_tab_unescapes_values() -> None:
    rows = mysql.parse_tab("a\tb\nx\\ty\tline\\nnext\\\\\n")
    assert rows == [{"a": "x\ty", "b": "line\nnext\\"}]


@pytest.mark.parametrize(
    ("rows", "io", "sql", "lag", "host"),
    [
        (lambda: vertical("mariadb-replica-status.G.txt"), "Yes", "Yes", 0, "192.168.56.20"),
        (lambda: tab("mariadb-replica-status.tab.txt"), "Yes", "Yes", 0, "192.168.56.20"),
        (
            lambda: vertical("mariadb-replica-io-connecting.G.txt"),
            "Connecting",
            "Yes",
            None,
            "192.168.56.20",
        ),
        (lambda: vertical("mariadb-replica-sql-stopped.G.txt"), "Yes", "No", None, "192.168.56.20"),
        (lambda: vertical("mysql8-replica-status.G.txt"), "Yes", "Yes", 0, "192.168.56.20"),
        (
            lambda: vertical("mysql8-replica-io-connecting.G.txt"),
            "Connecting",
            "Yes",
            None,
            "192.168.56.20",
        ),
    ],
)
def test_replica_state_of_both_flavors(rows, io: str, sql: str, lag: int | None, host: str) -> None:
    (row,) = rows()
    st = mysql.replica_state(row)
    assert (st.io_running, st.sql_running, st.seconds_behind, st.source_host) == (
        io,
        sql,
        lag,
        host,
    )
    assert st.healthy == (io == sql == "Yes")


def test_last_io_error_is_kept() -> None:
    st = mysql.replica_state(vertical("mariadb-replica-io-connecting.G.txt")[0])
    assert "Connection refused" in st.last_io_error


def test_binlog_coordinates() -> None:
    assert mysql.binlog_coordinates(tab("mariadb-master-status.tab.txt")) == (
        "mysql-bin.000001",
        642308,
    )
    assert mysql.binlog_coordinates(tab("mysql8-binary-log-status.tab.txt")) == (
        "binlog.000002",
        1307,
    )
    with pytest.raises(ValueError, match="binary logging is off"):
        mysql.binlog_coordinates([])


def test_connected_replicas_from_hosts_or_processlist() -> None:
    assert mysql.connected_replicas(tab("mariadb-slave-hosts.tab.txt")) == [
        "mysql-replica2",
        "mysql-replica1",
    ]
    assert mysql.connected_replicas(tab("mysql8-replicas.tab.txt")) == ["mysql-replica2"]
    # without report_host, the Binlog Dump threads tell
    assert mysql.connected_replicas([], tab("mariadb-primary-processlist.tab.txt")) == [
        "192.168.56.21",
        "192.168.56.22",
    ]
    assert mysql.connected_replicas([], []) == []


# ---------------------------------------------------------------- roles


def variables(name: str) -> dict[str, str]:
    return {r["Variable_name"]: r["Value"] for r in tab(name)}


def test_role_primary() -> None:
    r = mysql.decide_role(
        variables("mariadb-primary-variables.tab.txt"),
        tab("mariadb-primary-replica-status.tab.txt"),
        mysql.connected_replicas(tab("mariadb-slave-hosts.tab.txt")),
    )
    assert (r.role, r.log_bin, r.binlog_format, r.replica) == ("primary", "ON", "ROW", None)


def test_role_replica() -> None:
    r = mysql.decide_role(
        variables("mariadb-replica-variables.tab.txt"), vertical("mariadb-replica-status.G.txt"), []
    )
    assert r.role == "replica" and r.replica and r.replica.healthy


def test_role_dual_is_a_replica_with_replicas() -> None:
    r = mysql.decide_role(
        variables("mysql8-variables.tab.txt"),
        vertical("mysql8-replica-status.G.txt"),
        mysql.connected_replicas(tab("mysql8-replicas.tab.txt")),
    )
    assert r.role == "dual"


def test_log_bin_alone_is_standalone() -> None:
    # MySQL 8 logs binary by default: that alone makes no source
    r = mysql.decide_role(variables("mysql8-variables.tab.txt"), [], [])
    assert (r.role, r.log_bin) == ("standalone", "ON")


def test_broken_replica_is_still_a_replica() -> None:
    for name in (
        "mariadb-replica-io-connecting.G.txt",
        "mariadb-replica-sql-stopped.G.txt",
        "mysql8-replica-io-connecting.G.txt",
    ):
        r = mysql.decide_role({}, vertical(name), [])
        assert r.role == "replica" and r.replica and not r.replica.healthy


# ---------------------------------------------------------------- verify


def test_judge_edge() -> None:
    ok = mysql.replica_state(vertical("mariadb-replica-status.G.txt")[0])
    assert mysql.judge_edge("replica1", "primary", {"192.168.56.20"}, ok).status == "ok"
    assert mysql.judge_edge("replica2", "replica1", {"192.168.56.21"}, ok).status == "wrong source"
    broken = mysql.replica_state(vertical("mariadb-replica-io-connecting.G.txt")[0])
    edge = mysql.judge_edge("replica1", "primary", {"192.168.56.20"}, broken)
    assert edge.status == "broken" and "Connecting" in edge.detail
    assert mysql.judge_edge("replica1", "primary", {"x"}, None).status == "broken"
    lagging = mysql.replica_state(
        {**vertical("mariadb-replica-status.G.txt")[0], "Seconds_Behind_Master": "120"}
    )
    assert mysql.judge_edge("replica1", "primary", {"192.168.56.20"}, lagging).status == "lagging"


def test_role_dual_mariadb_chain() -> None:
    r = mysql.decide_role(
        variables("mariadb-dual-variables.tab.txt"),
        vertical("mariadb-dual-replica-status.G.txt"),
        mysql.connected_replicas(tab("mariadb-dual-slave-hosts.tab.txt")),
    )
    assert (r.role, r.log_bin, r.replicas) == ("dual", "ON", ["mysql-replica2"])
    assert r.replica and r.replica.source_host == "192.168.57.20"


@pytest.mark.parametrize(
    ("error", "secret"),
    [
        (
            "ERROR 1064 (42000) at line 1: You have an error in your SQL syntax; check the "
            "manual that corresponds to your MariaDB server version for the right syntax to "
            "use near 'MASTER_PASSWORD='Xy7pQ2', MASTER_PORT=3306' at line 1",
            "Xy7pQ2",
        ),
        ("near 'SOURCE_PASSWORD = 'Xy7pQ2", "Xy7pQ2"),  # cut where the client cut it
        ("near 'MASTER_PASSWORD='it\\'s', MASTER_PORT=1' at line 1", "it\\'s"),
        ("ALTER USER r IDENTIFIED BY 'Xy7pQ2'", "Xy7pQ2"),
        ('CREATE USER r IDENTIFIED WITH caching_sha2_password BY "Xy7pQ2"', "Xy7pQ2"),
        ("SET PASSWORD FOR r = PASSWORD('Xy7pQ2')", "Xy7pQ2"),
    ],
)
def test_a_password_never_reaches_an_error(error: str, secret: str) -> None:
    masked = mask_secrets(error)
    assert secret not in masked and "***" in masked
