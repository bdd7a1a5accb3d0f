"""MySQL/MariaDB replication end to end, with MariaDB from Debian in real guests."""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from labctl.guest.mysql.writer import RowWriter, setup_statements

from .conftest import Running, docker, lab_up, labctl_argv, shell_on_each

# About 200 transactions a second (an insert and an update each round), for
# a bounded time: the writer stops by itself.
WRITER = r"""
mysql -e "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, note VARCHAR(32)) ENGINE=InnoDB"
end=$(( $(date +%s) + $1 ))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
  echo "INSERT INTO app.t (v, note) VALUES ($i, 'w'); UPDATE app.t SET v = v + 1 WHERE id = 1 + ($i % 50);"
  i=$((i + 1))
  sleep 0.005
done | mysql
mysql -N -e "SELECT COUNT(*) FROM app.t"
"""

OUTPUTS: list[str] = []


@pytest.fixture(scope="module")
def star(labctl):
    with lab_up(labctl, "e2e-star", "mysql-pair", "--replicas", "2", "--no-containerd") as (
        name,
        _,
    ):
        yield name


@pytest.fixture(scope="module")
def mysql(labctl, star):
    def run(*args: str, lab: str = star, **kw):
        done = labctl("mysql", *args, "--lab", lab, **kw)
        OUTPUTS.extend([done.stdout, done.stderr])
        return done

    return run


def sql(labctl, lab: str, vm: str, statement: str) -> list[dict]:
    done = labctl("mysql", "sql", vm, statement, "--lab", lab, "--json")
    OUTPUTS.extend([done.stdout, done.stderr])
    assert done.code == 0, done.stderr
    return done.json()


def test_roles_and_check(mysql) -> None:
    roles = mysql("role", "--json").json()
    assert [(r["vm"], r["role"]) for r in roles] == [
        ("primary", "primary"),
        ("replica1", "replica"),
        ("replica2", "replica"),
    ]
    assert roles[0]["log_bin"] == "ON" and roles[0]["binlog_format"] == "ROW"
    assert sorted(roles[0]["replicas"]) == ["mysql-replica1", "mysql-replica2"]
    assert all(r["io_running"] == r["sql_running"] == "Yes" for r in roles[1:])
    verify = mysql("verify", "--json")
    assert verify.code == 0 and {e["status"] for e in verify.json()} == {"ok"}
    info = {r["vm"]: r for r in mysql("info", "--json").json()}
    assert {vm: r["read_only"] for vm, r in info.items()} == {
        "primary": False,
        "replica1": True,
        "replica2": True,
    }
    assert all("MariaDB" in r["version"] for r in info.values())
    assert len({r["server_id"] for r in info.values()}) == 3
    assert info["replica1"]["source_host"] == info["replica2"]["source_host"]
    table = mysql("info").stdout.splitlines()
    assert next(ln for ln in table if ln.startswith("primary")).split()[2:4] == ["primary", "open"]
    check = mysql("check", "--rows", "5000", "--json")
    assert check.code == 0, check.stderr
    report = check.json()
    assert report["ok"] and not report["problems"]
    written = [t for t in report["tables"] if t["table"] == "labctl_check.rows_written"]
    assert (
        len(written) == 3
        and {t["rows"] for t in written} == {5000}
        and len({t["checksum"] for t in written}) == 1
    )


def test_the_box_carries_mariadb_and_a_plain_user_sees_it_run(labctl, star) -> None:
    """On labctl's box the mysql role installs nothing (its change log holds
    configuration only), and `systemctl` without sudo answers, as in a VM."""
    logs = shell_on_each(labctl, star, "cat /var/lib/labctl/changes.log")
    assert all(": installed " not in log for log in logs.values()), logs
    services = shell_on_each(labctl, star, "systemctl is-active mariadb")
    assert set(services) == {"primary", "replica1", "replica2"}
    assert {out.strip() for out in services.values()} == {"active"}


STAT = {"threads", "questions", "slow_queries", "opens", "flush_tables", "open_tables"}


def mysqladmin_status(labctl, lab: str, vm: str) -> dict[str, str]:
    """MariaDB's own `mysqladmin status` (the `\\s` line), as name -> value."""
    done = labctl(
        "exec", "--lab", lab, "--vm", vm, "--sudo", "--json", "--", "mysqladmin", "status"
    )
    assert done.code == 0, done.stderr
    words = done.json()[0]["stdout"].strip().split("  ")
    return dict(w.strip().split(": ", 1) for w in words if ": " in w)


def test_info_makes_every_check_of_the_field_notes(labctl, mysql, star) -> None:
    """Every figure on every server, against MariaDB's own client; a MyISAM
    table, a stopped replica under a short retention and a duplicate
    server_id, each found and named."""
    info = mysql("info", "--json")
    assert info.code == 0, info.stderr
    rows = {r["vm"]: r for r in info.json()}
    assert set(rows) == {"primary", "replica1", "replica2"}
    subnet = labctl("status", star, "--json").json()[0]["ip"].rsplit(".", 1)[0]
    for r in rows.values():
        assert r["log_bin"] == "ON" and r["binlog_retention_s"] > 0
        assert r["binlog_retention_from"] in ("binlog_expire_logs_seconds", "expire_logs_days")
        assert set(r["stat"]) >= STAT and r["stat"]["questions"] > 0
        assert r["binlogs"] and all(b["age_s"] is not None for b in r["binlogs"])
        assert [a["host"] for a in r["repl_accounts"]] in ([], [f"{subnet}.%"])
        assert r["non_innodb_tables"] == [] and r["findings"] == []
    assert rows["primary"]["repl_accounts"] == [{"user": "repl", "host": f"{subnet}.%"}]
    threads = rows["primary"]["replicas_connected"]
    assert [(t["replica"], t["user"], t["mode"]) for t in threads] == [
        ("replica1", "repl", "file"),
        ("replica2", "repl", "file"),
    ]
    assert all("binlog" in t["state"] for t in threads)
    assert rows["replica1"]["source_log_file"] == rows["primary"]["binlogs"][-1]["name"]
    # the `\s` figures, as MariaDB's own mysqladmin counts them just after
    client = mysqladmin_status(labctl, star, "primary")
    ours = rows["primary"]["stat"]
    assert ours["slow_queries"] == int(client["Slow queries"])
    assert ours["opens"] <= int(client["Opens"]) and ours["questions"] <= int(client["Questions"])
    assert rows["primary"]["uptime_s"] <= int(client["Uptime"])
    table = mysql("info").stdout
    assert max(map(len, table.splitlines())) <= 100, table

    # a MyISAM table in a user schema: a warning naming it, on every server it reached
    sql(labctl, star, "primary", "CREATE DATABASE IF NOT EXISTS e2e_info")
    sql(labctl, star, "primary", "CREATE TABLE e2e_info.legacy (id INT PRIMARY KEY) ENGINE=MyISAM")
    try:
        warned = mysql("info", "primary", "--json")
        assert warned.code == 0, warned.stderr
        [row] = warned.json()
        assert row["non_innodb_tables"] == [
            {"schema": "e2e_info", "name": "legacy", "engine": "MyISAM"}
        ]
        assert [f["level"] for f in row["findings"]] == ["warning"]
        assert "e2e_info.legacy is MyISAM" in row["findings"][0]["message"]
        assert "primary: e2e_info.legacy is MyISAM" in mysql("info", "primary").stderr
    finally:
        sql(labctl, star, "primary", "DROP DATABASE e2e_info")

    # a stopped replica under a short retention, its binlog rotated away from
    sql(labctl, star, "replica2", "STOP SLAVE")
    kept = rows["primary"]["binlog_retention_s"]
    sql(labctl, star, "primary", "SET GLOBAL binlog_expire_logs_seconds = 1800")
    try:
        sql(labctl, star, "primary", "FLUSH BINARY LOGS")
        warned = mysql("info", "--json")
        assert warned.code == 0, warned.stderr
        r2 = next(r for r in warned.json() if r["vm"] == "replica2")
        [purge] = [f for f in r2["findings"] if "purges" in f["message"]]
        assert purge["vms"] == ["replica2", "primary"]
        assert (
            f"primary purges {rows['replica1']['source_log_file']} (which it still needs)"
            in (purge["message"])
        )
    finally:
        sql(labctl, star, "primary", f"SET GLOBAL binlog_expire_logs_seconds = {kept}")
        sql(labctl, star, "replica2", "START SLAVE")

    # a replica given the primary's server_id: an error naming both, exit 1
    own = rows["replica1"]["server_id"]
    sql(labctl, star, "replica1", f"SET GLOBAL server_id = {rows['primary']['server_id']}")
    try:
        failed = mysql("info")
        assert failed.code == 1
        errors = [ln for ln in failed.stderr.splitlines() if ln.startswith("labctl: error:")]
        assert len(errors) == 1 and "is on both primary and replica1" in errors[0], failed.stderr
    finally:
        sql(labctl, star, "replica1", f"SET GLOBAL server_id = {own}")
    assert mysql("info").code == 0


def test_add_replica_while_the_primary_writes(labctl, mysql, star, lab_home: Path) -> None:
    # Rows that exist before the new replica does...
    sql(labctl, star, "primary", "CREATE DATABASE IF NOT EXISTS before_add")
    sql(
        labctl,
        star,
        "primary",
        "CREATE TABLE IF NOT EXISTS before_add.t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    sql(
        labctl,
        star,
        "primary",
        "INSERT INTO before_add.t VALUES " + ", ".join(f"({i}, 'row{i}')" for i in range(1, 1001)),
    )
    # ...and a writer that keeps inserting and updating during the snapshot: an
    # application of the user's own, over plain OpenSSH (labctl exec would hold
    # the lab as a reader, and keep add-replica, a writer, out).
    config = lab_home / "e2e-star.ssh"
    handed = labctl("ssh-config", star)
    assert handed.code == 0, handed.stderr
    config.write_text(handed.stdout)
    writer = subprocess.Popen(
        [
            "ssh",
            "-F",
            str(config),
            "-o",
            "BatchMode=yes",
            "primary",
            shlex.join(["sudo", "sh", "-c", WRITER, "writer", "75"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    added = mysql("add-replica", "-q", "--json")
    assert added.code == 0, added.stderr[-3000:]
    assert [r["name"] for r in added.json()] == ["primary", "replica1", "replica2", "replica3"]
    assert "snapshot of primary under FLUSH TABLES WITH READ LOCK" in added.stderr
    out, err = writer.communicate(timeout=200)
    assert writer.returncode == 0, err
    assert writer_still_ran_after_add(out)
    assert sql(
        labctl, star, "replica3", "SELECT COUNT(*) AS n, MAX(id) AS top FROM before_add.t"
    ) == [{"n": "1000", "top": "1000"}]
    sql(labctl, star, "primary", "INSERT INTO before_add.t VALUES (1001, 'after')")
    check = mysql("check", "--rows", "500", "--json")
    assert check.code == 0, check.stderr
    tables = {(t["vm"], t["table"]): t for t in check.json()["tables"]}
    assert tables[("replica3", "before_add.t")]["rows"] == 1001  # new writes follow
    app = {t["checksum"] for (vm, table), t in tables.items() if table == "app.t"}
    assert len(app) == 1 and tables[("replica3", "app.t")]["rows"] > 1000
    assert [r["role"] for r in mysql("role", "--json").json()] == [
        "primary",
        "replica",
        "replica",
        "replica",
    ]


def writer_still_ran_after_add(out: str) -> bool:
    """The writer ran to its end (its last line is the final row count)."""
    return int(out.split()[-1]) > 5000


def test_primary_restart_heals_within_15_s(labctl, mysql, star) -> None:
    assert (
        labctl(
            "exec",
            "--lab",
            star,
            "--vm",
            "primary",
            "--sudo",
            "--",
            "systemctl",
            "restart",
            "mariadb",
        ).code
        == 0
    )
    start = time.monotonic()
    while time.monotonic() - start < 15:
        if mysql("status").code == 0:
            break
        time.sleep(0.5)
    assert mysql("status").code == 0, "replicas did not reconnect within 15 s"
    assert time.monotonic() - start < 15
    # a primary restarted behind labctl's back takes no writes until labctl opens it
    assert sql(labctl, star, "primary", "SELECT @@GLOBAL.read_only AS ro") == [{"ro": "1"}]
    assert labctl("up", star, "-q").code == 0
    assert sql(labctl, star, "primary", "SELECT @@GLOBAL.read_only AS ro") == [{"ro": "0"}]


def test_stopped_sql_thread_fails_status(labctl, mysql, star) -> None:
    sql(labctl, star, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        status = mysql("status", "--json")
        assert status.code == 1
        broken = [r for r in status.json()["replicas"] if r["broken"]]
        assert [(r["vm"], r["sql_running"]) for r in broken] == [("replica2", "No")]
        assert "replication broken on replica2" in mysql("status").stderr
        assert mysql("verify").code == 1
        shown = labctl("mysql", "sql", "replica2", "SHOW SLAVE STATUS\\G", "--lab", star)
        assert shown.code == 0 and "Slave_SQL_Running: No" in shown.stdout
    finally:
        sql(labctl, star, "replica2", "START SLAVE SQL_THREAD")
    assert mysql("status").code == 0


def test_no_secret_anywhere(labctl, star, lab_home: Path) -> None:
    folder = lab_home / star
    secret_file = folder / "secrets" / "mysql-repl-password"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    assert oct(secret_file.parent.stat().st_mode & 0o777) == "0o700"
    password = secret_file.read_text().strip()
    assert len(password) >= 20
    for path in folder.rglob("*"):
        if path.is_file() and path != secret_file:
            assert password not in path.read_text(errors="replace"), path
    assert not any(password in text for text in OUTPUTS)
    # In the guests: logs, journal, binlogs, configuration, temp files, processes.
    # The probe gets the password on stdin and keeps it in a file under /run,
    # so that the probe itself puts it in no command line (sudo logs those).
    # (A replica keeps it in master.info by design: that is how it reconnects.)
    probe = (
        "sudo sh -c '"
        'umask 077; f=$(mktemp -p /run); cat >"$f"; found=0; '
        'grep -rlF -f "$f" /var/log /etc /tmp /var/tmp /root /home 2>/dev/null && found=1; '
        'journalctl --no-pager 2>/dev/null | grep -qF -f "$f" && found=1; '
        'for b in /var/lib/mysql/mysql-bin.[0-9]*; do [ -e "$b" ] && mysqlbinlog -v "$b" | grep -qF -f "$f" && found=1; done; '
        'ps auxww | grep -qF -f "$f" && found=1; '
        'rm -f "$f"; echo found=$found\''
    )
    for vm in ("primary", "replica1", "replica2", "replica3"):
        done = labctl("ssh", star, vm, "-c", probe, input=password + "\n")
        assert done.code == 0, done.stderr
        assert done.stdout.strip().endswith("found=0"), (vm, done.stdout)


def test_unknown_machine(mysql) -> None:
    unknown = mysql("role", "node9")
    assert unknown.code == 2 and "no machine 'node9'" in unknown.stderr


def test_chain_with_gtid(labctl) -> None:
    with lab_up(
        labctl, "e2e-chain", "mysql-pair", "--replicas", "2", "--chain", "--gtid", "--no-containerd"
    ) as (lab, _):
        roles = labctl("mysql", "role", "--lab", lab, "--json").json()
        assert [(r["vm"], r["role"]) for r in roles] == [
            ("primary", "primary"),
            ("replica1", "dual"),
            ("replica2", "replica"),
        ]
        assert roles[2]["source_host"].endswith(".21")  # replica2 replicates from replica1
        check = labctl("mysql", "check", "--lab", lab, "--rows", "2000")
        assert check.code == 0, check.stderr
        gtid = labctl(
            "mysql", "sql", "replica2", "SHOW SLAVE STATUS", "--lab", lab, "--json"
        ).json()[0]
        assert gtid["Using_Gtid"] == "Slave_Pos"
        # down the chain, each source's dump thread in GTID mode, as its replica says
        info = {r["vm"]: r for r in labctl("mysql", "info", "--lab", lab, "--json").json()}
        assert [(t["replica"], t["mode"]) for t in info["primary"]["replicas_connected"]] == [
            ("replica1", "gtid")
        ]
        assert [(t["replica"], t["mode"]) for t in info["replica1"]["replicas_connected"]] == [
            ("replica2", "gtid")
        ]
        edges = labctl("mysql", "verify", "--lab", lab, "--json").json()
        assert [(e["replica"], e["source"], e["status"]) for e in edges] == [
            ("replica1", "primary", "ok"),
            ("replica2", "replica1", "ok"),
        ]
        # a switchover keeps the chain, the new primary at its head
        switched = labctl("mysql", "switchover", "--to", "replica1", "--lab", lab, "--json")
        assert switched.code == 0, switched.stderr
        assert switched.json()["edges"] == {"primary": "replica1", "replica2": "primary"}
        roles = labctl("mysql", "role", "--lab", lab, "--json").json()
        assert [(r["vm"], r["role"]) for r in roles] == [
            ("primary", "dual"),
            ("replica1", "primary"),
            ("replica2", "replica"),
        ]
        edges = labctl("mysql", "verify", "--lab", lab, "--json")
        assert edges.code == 0, edges.stdout
        assert [(e["replica"], e["source"]) for e in edges.json()] == [
            ("primary", "replica1"),
            ("replica2", "primary"),
        ]
        check = labctl("mysql", "check", "--lab", lab, "--rows", "500")
        assert check.code == 0, check.stderr


def test_a_replica_killed_outside_labctl_is_named(labctl, mysql, star) -> None:
    """A replica's guest killed behind labctl's back: mysql role/status/check
    name it and exit 1, and still answer for the other servers."""
    machines = [r["name"] for r in labctl("status", star, "--json").json()]
    replicas = [m for m in machines if m.startswith("replica")]  # add-replica made more
    docker("kill", f"labctl-{star}-replica2")
    try:
        said = "replica2: not running (docker state: exited) — labctl up " + star
        status = mysql("status", "--json")
        assert status.code == 1 and said in status.stderr
        report = status.json()
        assert [r["vm"] for r in report["replicas"]] == [r for r in replicas if r != "replica2"]
        assert report["errors"] == [{"vm": "replica2", "error": said}]

        roles = mysql("role", "--json")
        assert roles.code == 1 and said in roles.stderr
        assert {r["vm"]: r.get("role", r.get("error")) for r in roles.json()} == {
            "primary": "primary",
            **{r: (said if r == "replica2" else "replica") for r in replicas},
        }

        check = mysql("check", "--rows", "50", "--json")
        assert check.code == 1 and said in check.stderr
        checked = {t["vm"] for t in check.json()["tables"]}
        assert checked == set(machines) - {"replica2"}  # the others still checked
        assert mysql("verify").code == 1
        info = mysql("info", "--json")
        assert info.code == 1 and said in info.stderr
        answered = {r["vm"]: r for r in info.json()}
        assert answered["replica2"] == {"vm": "replica2", "error": said}
        assert all("version" in answered[m] for m in machines if m != "replica2")
        refused = mysql("switchover", "--to", "replica1")
        assert (
            refused.code == 1 and "needs every server of primary's tree running" in refused.stderr
        )
        assert mysql("role", "primary", "--json").json()[0]["role"] == "primary"  # unchanged
    finally:
        up = labctl("up", star, "-q")
    assert up.code == 0, up.stderr[-2000:]
    deadline = time.monotonic() + 60
    while mysql("status").code != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert mysql("status").code == 0


def test_readers_and_writers_never_overlap(labctl, mysql, star, lab_home: Path) -> None:
    """A command that reads the lab (exec, mysql, ctr) keeps destroy and halt
    out (exit 75, the lab untouched); a writer keeps the readers out."""
    env = {**os.environ, "LABCTL_HOME": str(lab_home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    reader = subprocess.Popen(
        labctl_argv("exec", "--lab", star, "--", "sleep", "8"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # connected, sleeping
        for writer in (("destroy", star, "--yes"), ("halt", star)):
            done = labctl(*writer)
            assert done.code == 75, done.stderr
            assert f"lab '{star}' is busy" in done.stderr
    finally:
        assert reader.wait(timeout=60) == 0, reader.stderr.read() if reader.stderr else ""
    assert {r["state"] for r in labctl("status", star, "--json").json()} == {"running"}

    writer = subprocess.Popen(
        labctl_argv("provision", star),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # Vagrant is provisioning
        assert writer.poll() is None, "provision finished too soon to race"
        kept_out = mysql("role")
        assert kept_out.code == 75 and "labctl provision (pid" in kept_out.stderr
    finally:
        assert writer.wait(timeout=600) == 0
    assert mysql("status").code == 0


def test_ctrl_c_during_role_setup_leaves_the_lab_to_the_next_up(
    labctl, mysql, star, lab_home: Path, host_dir: Path
) -> None:
    """replica2 forgets its source, so `up` seeds it again from a snapshot
    taken under a read lock on the primary; a Ctrl-C there leaves no lock on
    the primary, and the next `up` finishes the set-up."""
    sql(labctl, star, "replica2", "STOP SLAVE")
    sql(labctl, star, "replica2", "RESET SLAVE ALL")
    run = Running(lab_home, host_dir, "up", star)
    run.wait_for("snapshot of primary")
    run.ctrl_c()
    code, text = run.finish()
    assert code == 130, text[-2000:]
    assert "interrupted" in text.strip().splitlines()[-1], text[-500:]
    sql(labctl, star, "primary", "INSERT INTO app.t (v, note) VALUES (1, 'after ctrl-c')")
    again = labctl("up", star)
    assert again.code == 0, again.stderr[-2000:]
    assert mysql("verify").code == 0
    assert mysql("check").code == 0


def test_a_cut_link_stops_a_replica_and_heal_restores_it(labctl, mysql, star) -> None:
    """iptables in both guests: replica1's IO thread loses the primary within
    its 10 s net timeout; heal removes exactly labctl's rules and replication
    resumes by itself. netem needs a guest kernel of its own: the docker
    provider's guests say so at once."""
    cut = labctl("link", "cut", "replica1", "primary", "--lab", star, "--json")
    try:
        assert cut.code == 0, cut.stderr
        rows = labctl("link", "ls", "--lab", star, "--json").json()
        listed = {r["vm"]: r["cut_from"] for r in rows}
        assert listed["replica1"] == ["primary"] and listed["primary"] == ["replica1"]
        assert listed["replica2"] == []
        assert all(r["dev"] == "eth1" and r["impaired"] is None for r in rows), rows
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            status = mysql("status", "--json")
            replica1 = next(r for r in status.json()["replicas"] if r["vm"] == "replica1")
            if replica1["io_running"] != "Yes":
                break
            time.sleep(1)
        assert status.code == 1 and replica1["io_running"] in ("Connecting", "No"), replica1
        others = [r for r in status.json()["replicas"] if r["vm"] != "replica1"]
        assert others and not any(r["broken"] for r in others)  # only that link is cut
    finally:
        healed = labctl("link", "heal", "--lab", star)
    assert healed.code == 0, healed.stderr
    assert all(not r["cut_from"] for r in labctl("link", "ls", "--lab", star, "--json").json())
    deadline = time.monotonic() + 45
    while mysql("status").code != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert mysql("status").code == 0 and mysql("check", "--rows", "100").code == 0

    impaired = labctl("link", "impair", "replica1", "--delay", "200ms", "--lab", star)
    assert impaired.code == 1
    assert "replica1: its kernel has no netem" in impaired.stderr
    assert "docker provider's guests run on the host's kernel" in impaired.stderr


def start_writer(labctl, lab: str, rate: float = 200) -> RowWriter:
    """The host-side writer (an ordinary account: read_only stops it) on the
    lab's private network, its account and table made on the primary."""
    machines = labctl("status", lab, "--json").json()
    subnet = machines[0]["ip"].rsplit(".", 1)[0]
    password = secrets.token_urlsafe(18)
    for statement in setup_statements(subnet, password):
        sql(labctl, lab, "primary", statement)
    servers = {m["name"]: m["ip"] for m in machines}
    return RowWriter(servers, password, rate).start()


def test_switchover_under_writes_loses_nothing_and_the_record_follows(labctl, mysql, star) -> None:
    """A 200 rows/s writer on the host through a switchover and back: every
    acknowledged row on every server, one writable server at any time, the
    lab's record (verify, a later up) following the new roles."""
    writer = start_writer(labctl, star)
    try:
        time.sleep(3)
        done = mysql("switchover", "--to", "replica1", "--json")
        assert done.code == 0, done.stderr
        time.sleep(3)
    finally:
        tally = writer.stop()
    switched = done.json()
    assert (switched["old"], switched["new"]) == ("primary", "replica1")
    assert tally.servers == ["primary", "replica1"], tally.last_error
    assert tally.unknown == [] and len(tally.acknowledged) > 600
    kept = sql(
        labctl, star, "replica1", "SELECT COUNT(*) AS n, MAX(n) AS top FROM labctl_writer.acked"
    )
    assert kept == [{"n": str(len(tally.acknowledged)), "top": str(tally.acknowledged[-1])}]
    print(
        f"switchover under {len(tally.acknowledged)} acknowledged rows: "
        f"{switched['read_only_ms']} ms without a writable server, "
        f"longest gap between two acknowledgements {tally.longest_gap_ms} ms, lost 0"
    )

    roles = {r["vm"]: r for r in mysql("role", "--json").json()}
    assert roles["replica1"]["role"] == "primary"
    assert {vm: r["role"] for vm, r in roles.items() if vm != "replica1"} == {
        vm: "replica" for vm in roles if vm != "replica1"
    }
    assert {r["source_host"] for vm, r in roles.items() if vm != "replica1"} == {
        roles["primary"]["source_host"]
    } and roles["primary"]["source_host"].endswith(".21")
    read_only = {
        vm: sql(labctl, star, vm, "SELECT @@GLOBAL.read_only AS ro")[0]["ro"] for vm in roles
    }
    assert read_only == {vm: ("0" if vm == "replica1" else "1") for vm in roles}
    assert mysql("verify").code == 0
    check = mysql("check", "--rows", "200", "--json")
    assert check.code == 0, check.stderr
    acked = {t["checksum"] for t in check.json()["tables"] if t["table"] == "labctl_writer.acked"}
    assert len(acked) == 1  # the same rows on every server

    # the lab's record follows: its topology again plans nothing
    replicas = str(len(roles) - 1)
    plan = labctl("up", star, "--replicas", replicas, "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    assert {s["action"] for s in plan.json()} == {"keep"}, plan.stdout
    assert "mysql-primary" in next(
        r["role"] for r in labctl("status", star, "--json").json() if r["name"] == "replica1"
    )

    # a bad target changes nothing
    again = mysql("switchover", "--to", "replica1")
    assert again.code == 2 and "replica1 is a primary already" in again.stderr

    # and back, by name
    back = mysql("switchover", "--to", "primary", "--json")
    assert back.code == 0, back.stderr
    roles = mysql("role", "--json").json()
    assert [r["role"] for r in roles] == ["primary"] + ["replica"] * (len(roles) - 1)
    assert mysql("verify").code == 0 and mysql("check", "--rows", "100").code == 0
