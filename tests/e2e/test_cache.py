"""The host's package cache end to end: two labs install the same package
that no box carries, and the second gets it from the cache, as the cache's
own transfer log shows; a stopped cache never breaks an install."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Labctl, destroy_and_check, fresh_subnet

# A package of a few kilobytes that no box carries and no role installs.
EXTRA = "sl"
SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
if ! dpkg-query -W -f='${{db:Status-Status}}' {EXTRA} 2>/dev/null | grep -qx installed; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends {EXTRA}
fi
"""
LAB_FILE = """\
name: {name}
machines:
  box:
    provision: [extra.sh]
"""

pytestmark = pytest.mark.e2e


def free_port() -> int:
    """A free port below 32768 (apt-cacher-ng listens on no higher one)."""
    for candidate in random.sample(range(20000, 32768), 50):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", candidate)) != 0:
                return candidate
    raise AssertionError("no free port from 20000 to 32767")


@pytest.fixture
def cache(labctl: Labctl, host_dir: Path) -> Iterator[dict[str, str]]:
    """This test's own cache (its port, its folder in this run's host
    folder): started here, so stopped here, and no other one touched."""
    env = {"LABCTL_CACHE_PORT": str(free_port())}
    started = labctl("cache", "start", env=env)
    assert started.code == 0, started.stderr
    try:
        yield env
    finally:
        labctl("cache", "stop", env=env)
    assert not labctl("cache", "status", "--json", env=env).json()["running"]  # type: ignore[index]


def package_lines(log: Path) -> list[tuple[str, str]]:
    """(I or O, client) of each transfer of EXTRA's .deb in the cache's log."""
    lines = []
    for line in log.read_text().splitlines():
        fields = line.split("|", 4)
        if len(fields) == 5 and f"/{EXTRA}_" in fields[4] and fields[4].endswith(".deb"):
            lines.append((fields[1], fields[3]))
    return lines


def logged(log: Path, count: int) -> list[tuple[str, str]]:
    """The transfers of EXTRA, once the cache has logged `count` of them (it
    writes its log a moment after the transfer)."""
    deadline = time.monotonic() + 10
    while len(found := package_lines(log)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_the_second_lab_gets_its_package_from_the_host_cache(
    labctl: Labctl, cache: dict[str, str], host_dir: Path, tmp_path: Path
) -> None:
    log = host_dir / "apt-cache" / "log" / "apt-cacher.log"
    for n, name in enumerate(("e2e-cache-a", "e2e-cache-b")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "extra.sh").write_text(SCRIPT)
        (folder / "lab.yaml").write_text(LAB_FILE.format(name=name))
        try:
            up = labctl(
                "up", "-f", str(folder / "lab.yaml"), "--subnet", fresh_subnet(), "-q", env=cache
            )
            assert up.code == 0, up.stderr[-3000:]
            ran = labctl("ssh", name, "box", "-c", f"dpkg-query -W {EXTRA}")
            assert ran.code == 0 and ran.stdout.startswith(EXTRA), ran.stdout + ran.stderr
            transfers = logged(log, 2 + n)
            if n == 0:  # fetched from the archive once, sent to the guest
                assert [kind for kind, _ in transfers] == ["I", "O"], transfers
                continue
            # sent again, not fetched again
            assert [kind for kind, _ in transfers] == ["I", "O", "O"], transfers
            status = labctl("cache", "status", "--json", env=cache).json()
            assert status["running"] and status["stats"]["hits"] == 1  # type: ignore[index]

            # A stopped cache: the guest's apt goes to the archive directly.
            assert labctl("cache", "stop", env=cache).code == 0
            ask = "/usr/local/lib/labctl/apt-proxy http://deb.debian.org/debian/"
            ran = labctl("ssh", name, "box", "-c", f"{ask} && sudo apt-get update -qq")
            assert (ran.code, ran.stdout.strip()) == (0, "DIRECT"), ran.stderr
        finally:
            destroy_and_check(labctl, name)
