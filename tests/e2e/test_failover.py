"""Failover end to end: drills on real guests (a host-side writer on the
lab's private network, the primary's machine halted or its mysqld killed),
the failed primary back as stale, rejoined, and every check clean."""

from __future__ import annotations

import pytest

from .conftest import lab_up


@pytest.fixture(scope="module")
def pair(labctl):
    with lab_up(labctl, "e2e-failover", "mysql-pair", "--replicas", "2", "--no-containerd") as (
        name,
        _,
    ):
        yield name


def mysql(labctl, lab: str, *args: str):
    return labctl("mysql", *args, "--lab", lab)


def back_and_rejoined(labctl, lab: str, old: str) -> dict:
    """The failed primary started again: stale and read-only until rejoined."""
    up = labctl("up", lab, "-q")
    assert up.code == 0, up.stderr[-2000:]
    assert f"stale (a failed primary): labctl mysql rejoin {old}" in up.stderr
    roles = {r["vm"]: r["role"] for r in mysql(labctl, lab, "role", "--json").json()}
    assert roles[old] == "stale (was primary)"
    ro = mysql(labctl, lab, "sql", old, "SELECT @@GLOBAL.read_only AS ro", "--json")
    assert ro.json() == [{"ro": "1"}]  # it never takes writes beside its successor
    verify = mysql(labctl, lab, "verify", "--json")
    assert verify.code == 1
    assert [e["status"] for e in verify.json() if e["replica"] == old] == ["stale"]
    rejoined = mysql(labctl, lab, "rejoin", old, "--json")
    assert rejoined.code == 0, rejoined.stderr
    assert mysql(labctl, lab, "verify").code == 0
    check = mysql(labctl, lab, "check", "--rows", "300")
    assert check.code == 0, check.stderr
    return rejoined.json()


def test_failover_refuses_a_primary_that_has_not_failed(labctl, pair) -> None:
    alive = mysql(labctl, pair, "failover")
    assert alive.code == 1 and "primary answers, takes writes" in alive.stderr
    assert "labctl mysql switchover" in alive.stderr
    unknown = mysql(labctl, pair, "failover", "--to", "nosuch")
    assert unknown.code == 2 and "no machine 'nosuch'" in unknown.stderr


def test_a_semi_sync_drill_loses_nothing(labctl, pair) -> None:
    done = mysql(labctl, pair, "drill", "--semi-sync", "--rate", "200", "--json")
    assert done.code == 0, done.stderr[-3000:]
    report = done.json()
    print("semi-sync drill:", report)
    assert report["fault"] == "halt" and report["semi_sync"]
    assert report["old"] == "primary" and report["new"] in ("replica1", "replica2")
    assert report["acknowledged"] > 500
    assert report["lost"] == [] and report["present"] == report["acknowledged"]
    assert report["replicas"] and all(report["replicas"].values())
    assert report["detect_ms"] > 0 and report["promote_ms"] > 0
    assert report["write_outage_ms"] > 0
    # the old primary's machine is halted; the record has it stale
    status = {r["name"]: r for r in labctl("status", pair, "--json").json()}
    assert status["primary"]["state"] != "running"
    assert "mysql-primary" in status[report["new"]]["role"]
    back_and_rejoined(labctl, pair, "primary")


def test_a_plain_drill_reports_numbers_that_add_up(labctl, pair) -> None:
    roles = {r["vm"]: r["role"] for r in mysql(labctl, pair, "role", "--json").json()}
    primary = next(vm for vm, role in roles.items() if role == "primary")
    done = mysql(labctl, pair, "drill", "--fault", "kill-mysqld", "--json")
    assert done.code == 0, done.stderr[-3000:]
    report = done.json()
    print("asynchronous drill, mysqld killed:", report)
    assert report["old"] == primary and not report["semi_sync"]
    assert report["acknowledged"] == report["present"] + len(report["lost"])
    assert all(report["replicas"].values())
    back_and_rejoined(labctl, pair, primary)


def test_a_drill_that_cuts_the_primary_off_fences_it(labctl, pair) -> None:
    """The primary cut off from its replicas still answers labctl (its SSH
    path) and the writer on the host: failover fences it read-only, and what
    it took meanwhile is reported lost; rejoin rebuilds it."""
    done = mysql(labctl, pair, "drill", "--fault", "cut", "--json")
    assert done.code == 0, done.stderr[-3000:]
    report = done.json()
    print("asynchronous drill, links cut:", {k: v for k, v in report.items() if k != "lost"})
    assert "fenced: read-only now" in done.stderr
    assert report["acknowledged"] == report["present"] + len(report["lost"])
    assert report["detect_ms"] >= 5000  # the replicas' 10 s net timeout, not a guess
    assert all(report["replicas"].values())
    assert all(not r["cut_from"] for r in labctl("link", "ls", "--lab", pair, "--json").json())
    rejoined = back_and_rejoined(labctl, pair, report["old"])
    assert (rejoined["how"] == "rebuilt from a snapshot") == bool(rejoined["diverged"])


def test_failover_by_hand_after_the_primary_is_halted(labctl, pair) -> None:
    roles = {r["vm"]: r["role"] for r in mysql(labctl, pair, "role", "--json").json()}
    primary = next(vm for vm, role in roles.items() if role == "primary")
    assert labctl("halt", pair, primary).code == 0
    done = mysql(labctl, pair, "failover", "--json")
    assert done.code == 0, done.stderr[-3000:]
    report = done.json()
    assert report["old"] == primary and report["why"].startswith(f"{primary} is not running")
    assert report["known_from"] == "what its replicas received" and report["may_be_lost"] == []
    info = {r["vm"]: r for r in mysql(labctl, pair, "info", "--json").json() if "error" not in r}
    assert info[report["new"]]["read_only"] is False
    assert [vm for vm, r in info.items() if not r["read_only"]] == [report["new"]]
    back_and_rejoined(labctl, pair, primary)
