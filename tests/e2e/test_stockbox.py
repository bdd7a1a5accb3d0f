"""The slow path: a lab on a box that carries none of the roles' packages (a
stock box, as `debian/bookworm64` on VirtualBox is) still comes up, its role
scripts installing what is missing, and then works as on labctl's box."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Labctl, destroy_and_check, fresh_subnet, shell_on_each

# labctl's docker box with every role package taken out, and nothing left
# that says it is labctl's (no manifest, no box labels): stock-like.
STOCK_DOCKERFILE = """\
FROM labctl/debian:bookworm
RUN apt-get purge -y -qq --auto-remove containerd runc default-mysql-server \\
      default-mysql-client 'mariadb-*' openjdk-17-jre-headless fontconfig iptables curl \\
 && rm -f /etc/labctl/box.json && apt-get clean
LABEL io.labctl.box.carries="" io.labctl.box.digest="" io.labctl.box.built=""
"""
LAB_FILE = """\
name: e2e-stock
machines:
  solo:
    roles: [containerd, mysql-primary]
"""


@pytest.fixture(scope="module")
def stock_box(labctl: Labctl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stock-like image, built for this test and removed after it."""
    tag = f"labctl-e2e/stock:{os.getpid()}"
    folder = tmp_path_factory.mktemp("stockbox")
    (folder / "Dockerfile").write_text(STOCK_DOCKERFILE)
    built = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(folder)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-2000:]
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_a_lab_on_a_stock_box_installs_what_is_missing_and_works(
    labctl: Labctl, stock_box: str, tmp_path: Path
) -> None:
    found = subprocess.run(
        ["docker", "run", "--rm", stock_box, "dpkg-query", "-W", "containerd", "mariadb-server"],
        capture_output=True,
        text=True,
    )
    assert found.returncode != 0  # the box carries neither

    (tmp_path / "lab.yaml").write_text(LAB_FILE)
    name = "e2e-stock"
    try:
        up = labctl(
            "up",
            "-f",
            str(tmp_path / "lab.yaml"),
            "--box",
            stock_box,
            "--subnet",
            fresh_subnet(),
            "--provider",
            "docker",
            "-q",
        )
        assert up.code == 0, up.stderr[-3000:]
        log = shell_on_each(labctl, name, "cat /var/lib/labctl/changes.log")["solo"]
        installed = [
            line.split(": installed ", 1)[1] for line in log.splitlines() if ": installed " in line
        ]
        assert any("containerd" in line and "runc" in line for line in installed), log
        assert any("default-mysql-server" in line for line in installed), log

        services = shell_on_each(
            labctl, name, "systemctl is-active containerd; systemctl is-active mariadb"
        )
        assert services["solo"].split() == ["active", "active"]
        # a primary with no replica yet: the server answers as one alone
        roles = labctl("mysql", "role", "--lab", name, "--json")
        assert roles.code == 0, roles.stderr
        assert [(r["vm"], r["role"]) for r in roles.json()] == [("solo", "standalone")]  # type: ignore[index]
        ps = labctl("ctr", "ps", "--lab", name)
        assert ps.code == 0, ps.stderr

        # a second provision run installs nothing more: the slow path is idempotent too
        again = labctl("provision", name)
        assert again.code == 0, again.stderr[-2000:]
        after = shell_on_each(labctl, name, "cat /var/lib/labctl/changes.log")["solo"]
        assert after == log
    finally:
        destroy_and_check(labctl, name)
