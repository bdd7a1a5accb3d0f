"""A user's own lab file end to end: a mixed lab comes up, every domain
command works on it by role, then the edited file is planned and applied to
the running lab, touching only what changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Labctl, change_counts, destroy_and_check, docker, fresh_subnet

LAB = "e2e-file"

# Records every run, so a machine provisioned again would show it.
APP_SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
mkdir -p /var/lib/app
echo run >>/var/lib/app/runs
hostname >/var/lib/app/who
"""

FIRST = """\
name: e2e-file
defaults: {cpus: 1, memory: 768}
machines:
  sql1:
    roles: [mysql-primary]
  sql2:
    roles:
      - mysql-replica: {source: sql1}
  sql3:
    roles:
      - mysql-replica: {source: sql2}   # sql2 becomes dual
  app:
    count: 2
    roles: [containerd]
    provision: [scripts/app.sh]
"""

# app2 goes, sql4 (a second replica of sql1) comes.
SECOND = (
    FIRST.replace("count: 2", "count: 1")
    + """\
  sql4:
    roles:
      - mysql-replica: {source: sql1}
"""
)


def containers(lab: str) -> dict[str, str]:
    """machine -> container id, for the lab's guests."""
    listed = docker(
        "ps", "-a", "--filter", f"label=io.labctl.lab={lab}", "--format", "{{.Names}} {{.ID}}"
    )
    prefix = f"labctl-{lab}-"
    return {
        name.removeprefix(prefix): cid
        for name, cid in (line.split() for line in listed.splitlines())
    }


def app_runs(labctl: Labctl, lab: str) -> int:
    """How often the user's script ran on app1."""
    done = labctl("exec", "--lab", lab, "--vm", "app1", "--json", "--", "cat", "/var/lib/app/runs")
    assert done.code == 0, done.stderr
    return len(done.json()[0]["stdout"].split())


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labfile")
    (root / "scripts").mkdir()
    script = root / "scripts" / "app.sh"
    script.write_text(APP_SCRIPT)
    script.chmod(0o755)
    (root / "lab.yaml").write_text(FIRST)
    return root


@pytest.fixture(scope="module")
def mixed(labctl: Labctl, lab_dir: Path) -> Iterator[str]:
    subnet = fresh_subnet()
    try:
        up = labctl(
            "up",
            "-f",
            str(lab_dir / "lab.yaml"),
            "--provider",
            "docker",
            "--subnet",
            subnet,
            "-q",
            "--json",
        )
        assert up.code == 0, up.stderr[-3000:]
        assert [r["name"] for r in up.json()] == ["sql1", "sql2", "sql3", "app1", "app2"]
        yield LAB
    finally:
        destroy_and_check(labctl, LAB)


def test_domain_commands_work_by_role(labctl: Labctl, mixed: str) -> None:
    roles = labctl("mysql", "role", "--lab", mixed, "--json")
    assert roles.code == 0, roles.stderr
    assert [(r["vm"], r["role"]) for r in roles.json()] == [
        ("sql1", "primary"),
        ("sql2", "dual"),
        ("sql3", "replica"),
    ]
    verify = labctl("mysql", "verify", "--lab", mixed, "--json")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert {(e["replica"], e["source"], e["status"]) for e in verify.json()} == {
        ("sql2", "sql1", "ok"),
        ("sql3", "sql2", "ok"),
    }
    check = labctl("mysql", "check", "--lab", mixed, "--rows", "500", "--json")
    assert check.code == 0, check.stderr
    assert check.json()["ok"]
    # containerd only where the role is
    ps = labctl("ctr", "--lab", mixed, "ps", "--json")
    assert ps.code == 0, ps.stderr
    ran = labctl("exec", "--lab", mixed, "--json", "--", "cat", "/var/lib/app/who")
    by_vm = {r["vm"]: r for r in ran.json()}
    assert sorted(by_vm) == ["app1", "app2", "sql1", "sql2", "sql3"]
    assert {vm: r["stdout"].strip() for vm, r in by_vm.items() if r["rc"] == 0} == {
        "app1": "app1",
        "app2": "app2",
    }  # the user's script ran where the file says, after the roles
    version = labctl("exec", "--lab", mixed, "--vm", "app1", "--", "ctr", "--version")
    assert version.code == 0 and "ctr" in version.stdout
    nojenkins = labctl("jenkins", "status", "--lab", mixed)
    assert nojenkins.code == 2 and "jenkins-controller" in nojenkins.stderr


def test_a_bad_file_changes_nothing(
    labctl: Labctl, mixed: str, lab_dir: Path, lab_home: Path
) -> None:
    before_ids = containers(mixed)
    record = (lab_home / mixed / "lab.json").read_text()
    bad = lab_dir / "bad.yaml"
    bad.write_text(FIRST.replace("source: sql2", "source: db9"))
    done = labctl("up", "-f", str(bad), "--name", mixed)
    assert done.code == 2
    assert done.stderr.startswith(
        "labctl: error: bad.yaml:11: machines.sql3.roles[0].mysql-replica.source:"
    )
    # removing the primary while its replicas stay is refused, saying what to do
    no_primary = lab_dir / "no-primary.yaml"
    no_primary.write_text(FIRST.replace("  sql1:\n    roles: [mysql-primary]\n", ""))
    done = labctl("up", "-f", str(no_primary), "--name", mixed, "--dry-run")
    assert done.code == 2 and "keep it while sql2 replicates from it" in done.stderr
    assert containers(mixed) == before_ids
    assert (lab_home / mixed / "lab.json").read_text() == record


def test_the_edited_file_is_planned_then_applied(
    labctl: Labctl, mixed: str, lab_dir: Path, lab_home: Path
) -> None:
    before_ids = containers(mixed)
    before_changes = change_counts(labctl, mixed)
    assert app_runs(labctl, mixed) == 1
    (lab_dir / "lab.yaml").write_text(SECOND)

    dry = labctl("up", "-f", str(lab_dir / "lab.yaml"), "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    changes = {s["machine"]: s["action"] for s in dry.json() if s["action"] != "keep"}
    assert changes == {"app2": "remove", "sql4": "add"}
    assert containers(mixed) == before_ids  # a dry run changes nothing

    text = labctl("up", "-f", str(lab_dir / "lab.yaml"), "--dry-run")
    assert "remove" in text.stdout and "app2" in text.stdout and "sql4" in text.stdout

    up = labctl("up", "-f", str(lab_dir / "lab.yaml"), "-q", "--json")
    assert up.code == 0, up.stderr[-3000:]
    assert "plan for lab e2e-file" in up.stderr
    assert [r["name"] for r in up.json()] == ["sql1", "sql2", "sql3", "app1", "sql4"]
    after_ids = containers(mixed)
    assert "app2" not in after_ids
    untouched = ["sql1", "sql2", "sql3", "app1"]
    assert {m: after_ids[m] for m in untouched} == {m: before_ids[m] for m in untouched}
    after_changes = change_counts(labctl, mixed)
    assert {m: after_changes[m] for m in untouched} == {m: before_changes[m] for m in untouched}
    assert app_runs(labctl, mixed) == 1  # not provisioned again

    verify = labctl("mysql", "verify", "--lab", mixed, "--json")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert {(e["replica"], e["source"]) for e in verify.json()} == {
        ("sql2", "sql1"),
        ("sql3", "sql2"),
        ("sql4", "sql1"),
    }
    check = labctl("mysql", "check", "--lab", mixed, "--rows", "200", "--json")
    assert check.code == 0, check.stderr
    tables = {(t["vm"], t["table"]) for t in check.json()["tables"]}
    assert ("sql4", "labctl_check.rows_written") in tables  # seeded, then replicating

    again = labctl("up", "-f", str(lab_dir / "lab.yaml"), "--dry-run")
    assert again.code == 0 and "nothing to change" in again.stdout
    kept = json.loads((lab_home / mixed / "lab.json").read_text())
    assert kept["origin"]["kind"] == "file"
    assert (lab_home / mixed / "lab.yaml").read_text().count("sql4") == 1
