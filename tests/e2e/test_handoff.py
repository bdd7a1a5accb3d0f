"""The lab handed to the user's own tools, each one real: OpenSSH reads
`ssh-config`, Ansible reads `inventory` and reaches every machine, an XML
parser reads `graph --format svg`, headless Chromium shows the HTML page."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import require
from .conftest import Labctl, lab_up, services_by_testinfra

SVG = "{http://www.w3.org/2000/svg}"
ANSIBLE_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def lab(labctl: Labctl):
    with lab_up(labctl, "e2e-hand", "mysql-pair", "--replicas", "2") as (name, _):
        yield name


def test_openssh_reaches_every_machine_with_strict_host_keys(
    labctl: Labctl, lab: str, tmp_path: Path
) -> None:
    done = labctl("ssh-config", lab)
    assert done.code == 0, done.stderr
    config = tmp_path / "config"
    config.write_text(done.stdout)
    assert "StrictHostKeyChecking yes" in done.stdout and "/dev/null" not in done.stdout
    for vm, hostname in (("primary", "mysql-primary"), ("replica1", "mysql-replica1")):
        for name in (f"{lab}-{vm}", vm):
            ran = subprocess.run(
                ["ssh", "-F", str(config), "-o", "BatchMode=yes", name, "hostname"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.strip() == hostname
    # A key that is not the machine's is refused: the user's ssh is as strict as labctl.
    known = Path(next(x.split()[1] for x in done.stdout.splitlines() if "UserKnownHostsFile" in x))
    lines = known.read_text().splitlines()
    keys = [line.split(" ", 1)[1] for line in lines]
    swapped = tmp_path / "known_hosts"
    swapped.write_text(
        "".join(
            f"{line.split(' ')[0]} {keys[(i + 1) % len(keys)]}\n" for i, line in enumerate(lines)
        )
    )
    refused = subprocess.run(
        [
            "ssh",
            "-F",
            str(config),
            "-o",
            f"UserKnownHostsFile={swapped}",
            "-o",
            "BatchMode=yes",
            "primary",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # ssh takes the first UserKnownHostsFile it is given: the command line's
    assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr


def test_testinfra_sees_the_services_run_without_sudo(labctl: Labctl, lab: str) -> None:
    """A docker guest answers a plain user's systemctl as a VM does (a system
    bus runs), so the user's testinfra suite needs no --sudo."""
    found = services_by_testinfra(
        labctl, lab, "primary", ["mariadb", "containerd", "cron-not-here"]
    )
    assert found == {"mariadb": True, "containerd": True, "cron-not-here": False}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder whose path leaves room for a Unix socket's name (108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="acp-", dir="/tmp") as name:
        yield Path(name)


def test_ansible_pings_every_machine_and_limits_by_group(
    labctl: Labctl, lab: str, tmp_path: Path, short_dir: Path
) -> None:
    require((ANSIBLE_BIN / "ansible").exists(), "ansible-core is not installed (dev extras)")
    inventory = tmp_path / "lab.ini"
    done = labctl("inventory", lab, "-o", str(inventory))
    assert done.code == 0, done.stderr
    env = {
        "PATH": f"{ANSIBLE_BIN}:/usr/bin:/bin",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"),
        "HOME": str(tmp_path),
        # ssh's control sockets: a path under tmp_path is over the 108 bytes
        # a Unix socket's name may have
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(short_dir),
        "ANSIBLE_NOCOLOR": "1",
    }
    ping = subprocess.run(
        [str(ANSIBLE_BIN / "ansible"), "-i", str(inventory), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 3
    replicas = subprocess.run(
        [
            str(ANSIBLE_BIN / "ansible"),
            "-i",
            str(inventory),
            "mysql_replica",
            "-m",
            "command",
            "-a",
            "hostname",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert replicas.returncode == 0, replicas.stdout + replicas.stderr
    assert "mysql-replica1" in replicas.stdout and "mysql-replica2" in replicas.stdout
    assert "mysql-primary" not in replicas.stdout
    yaml_inv = tmp_path / "lab.yaml"
    assert labctl("inventory", lab, "--format", "yaml", "-o", str(yaml_inv)).code == 0
    listed = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(yaml_inv), "--graph"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0 and "@mysql_primary:" in listed.stdout


def test_graph_svg_names_every_machine_and_edge(labctl: Labctl, lab: str, tmp_path: Path) -> None:
    out = tmp_path / "lab.svg"
    done = labctl("graph", lab, "-o", str(out))
    assert done.code == 0, done.stderr
    root = ET.parse(out).getroot()
    titles: dict[str, list[str]] = {}
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if title is not None and g.get("class") in ("node", "edge"):
            titles.setdefault(g.get("class", ""), []).append(title.text or "")
    assert sorted(titles["node"]) == ["primary", "replica1", "replica2"]
    assert sorted(titles["edge"]) == ["primary->replica1", "primary->replica2"]
    assert "lag" in out.read_text()


def test_graph_page_shows_in_headless_chromium(labctl: Labctl, lab: str, tmp_path: Path) -> None:
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    require(browser, "headless Chromium is not installed")
    from PIL import Image

    page = tmp_path / "lab.html"
    assert labctl("graph", lab, "--format", "html", "-o", str(page)).code == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(browser),
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,800",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(image.width * image.height) or []
    # the replication edges' green, the nodes' fill: the picture was drawn
    green = sum(
        n
        for n, (r, g, b) in colours
        if abs(r - 0x2E) < 30 and abs(g - 0x8B) < 30 and abs(b - 0x57) < 30
    )
    fill = sum(n for n, c in colours if c == (0xEE, 0xF4, 0xFB))
    assert green > 50, f"no edge drawn ({green} green pixels)"
    assert fill > 5000, f"no machine drawn ({fill} fill pixels)"
