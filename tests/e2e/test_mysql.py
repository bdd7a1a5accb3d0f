"""MySQL/MariaDB replication end to end, with MariaDB from Debian in real guests."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Running, docker, lab_up

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
        edges = labctl("mysql", "verify", "--lab", lab, "--json").json()
        assert [(e["replica"], e["source"], e["status"]) for e in edges] == [
            ("replica1", "primary", "ok"),
            ("replica2", "replica1", "ok"),
        ]


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
        [sys.executable, "-m", "labctl", "exec", "--lab", star, "--", "sleep", "8"],
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
        [sys.executable, "-m", "labctl", "provision", star],
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
