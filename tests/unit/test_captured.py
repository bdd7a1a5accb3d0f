"""Every captured output (tests/data/*/*.txt), by one runner: each says which
command made it, with which tool version, where; each is read by the labctl
parser it names, which must make something of it or fail as labctl reports
failures (LabctlError), never crash on it. Outputs written by hand are the
few whose tool cannot run on this machine, each saying why."""

from __future__ import annotations

import importlib

import pytest

from labctl.errors import LabctlError

from ..conftest import DATA
from . import captured
from .captured import load

# written by hand, each for the reason its header gives: MySQL 8 and VirtualBox
# cannot run here; containerd after 1.6 prints `ctr t ps` differently
BY_HAND = {
    "ctr/t-ps-exec-id-format.txt",
    "mysql/mysql8-binary-log-status.tab.txt",
    "mysql/mysql8-binary-logs.tab.txt",
    "mysql/mysql8-binlog-variables.tab.txt",
    "mysql/mysql8-dump-threads.tab.txt",
    "mysql/mysql8-non-innodb.tab.txt",
    "mysql/mysql8-repl-accounts.tab.txt",
    "mysql/mysql8-status.tab.txt",
    "mysql/mysql8-replica-io-connecting.G.txt",
    "mysql/mysql8-replica-status.G.txt",
    "mysql/mysql8-replicas.tab.txt",
    "mysql/mysql8-variables.tab.txt",
    "providers/vboxmanage-runningvms.txt",
    "providers/vboxmanage-showvminfo-missing.txt",
    "providers/vboxmanage-showvminfo-poweroff.txt",
    "providers/vboxmanage-version.txt",
}


def test_the_captures_are_found() -> None:
    found = captured.every()
    assert len(found) >= 50
    assert {p.split("/")[0] for p in found} >= {"ctr", "mysql", "providers", "vagrant", "link"}


@pytest.mark.parametrize("relative", captured.every())
def test_a_capture_says_where_it_came_from_and_is_read(relative: str) -> None:
    c = captured.load(relative)
    assert c.command and c.version and c.captured, "command, version and captured, each said"
    assert c.by_hand == (relative in BY_HAND), "by hand only where the tool cannot run here"
    if c.by_hand:
        assert len(c.version.split(":", 1)[1].strip()) > 20, "says why"
    assert c.parser, "names the parser that reads it"
    name, _, kind = c.parser.partition(" ")
    module, _, function = name.partition(":")
    parse = getattr(importlib.import_module(module), function)
    given = c.completed() if kind == "(completed)" else (c.stdout or c.stderr)
    try:
        found = parse(given)
    except LabctlError as exc:  # what labctl says of a failed run: a message, not a crash
        assert exc.message
        return
    if (c.stdout or c.stderr).strip():  # an output that says something is understood
        assert found not in (None, "", [], {}, False), found


def test_capture_files_name_their_origin() -> None:
    for path in sorted((DATA / "host").glob("*.txt")):
        cap = load(f"host/{path.name}")
        assert cap.command and cap.version and cap.captured
