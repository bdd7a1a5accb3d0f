"""What labctl asks this host's own programs, through fakes that answer as
the real ones did (tests/data/host): the versions of Vagrant and the
providers (`labctl version`), and who holds a network a subnet is refused
for (docker's or libvirt's name for it, not only its bridge)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import labctl
from labctl import providers
from labctl.lab import hostnet
from labctl.ops import host
from labctl.providers import PROVIDERS, base, docker, libvirt

from ..captured import load
from ..fakes import HANG, host_programs

DOCKER_VERSION = "version --format *"
LIBVIRT_VERSION = "-c qemu:///system version --daemon"
EVERY_PROGRAM = {
    "vagrant": {"--version": "host/vagrant-version.txt"},
    "docker": {DOCKER_VERSION: "host/docker-version.txt"},
    "virsh": {
        "--version": "host/virsh-version.txt",
        LIBVIRT_VERSION: "host/virsh-version-daemon.txt",
    },
    "VBoxManage": {"--version": "providers/vboxmanage-version.txt"},
}


def test_labctl_version_is_one_line(cli) -> None:
    done = cli("--version")
    assert (done.code, done.stdout, done.stderr) == (0, f"labctl {labctl.__version__}\n", "")
    assert labctl.__version__ == "0.1.0"


def test_version_names_every_program_with_its_own(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host_programs(monkeypatch, tmp_path / "bin", EVERY_PROGRAM)
    done = cli("version", "--json")
    assert done.code == 0, done.stderr
    assert [(v["name"], v["version"], v["note"]) for v in json.loads(done.stdout)] == [
        ("labctl", labctl.__version__, ""),
        ("vagrant", "2.3.4", ""),
        ("docker client", "28.2.2", ""),
        ("docker engine", "20.10.24+dfsg1", ""),
        ("virsh", "9.0.0", ""),
        ("libvirt daemon", "9.0.0", "qemu:///system"),
        ("libvirt hypervisor", "7.2.22", "QEMU"),
        ("VBoxManage", "7.0.20r163906", ""),
    ]


def test_a_missing_program_or_engine_is_a_row_not_an_error(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host_programs(
        monkeypatch,
        tmp_path / "bin",
        {
            "vagrant": {"--version": "host/vagrant-version.txt"},
            "docker": {DOCKER_VERSION: "host/docker-version-no-engine.txt"},
            "virsh": {
                "--version": "host/virsh-version.txt",
                LIBVIRT_VERSION: "host/virsh-version-no-daemon.txt",
            },
        },
    )
    done = cli("version")
    assert done.code == 0 and done.stderr == "", done.stderr
    rows = {line.split("   ")[0].strip(): line for line in done.stdout.splitlines()[1:]}
    assert rows["docker client"].split()[2] == "28.2.2"
    assert rows["docker engine"].split()[2:4] == ["missing", "not"]
    assert (
        "Cannot connect to the Docker daemon at unix:///nonexistent.sock" in rows["docker engine"]
    )
    for name in ("libvirt daemon", "libvirt hypervisor"):
        assert "missing" in rows[name]
        assert "not answering: error: Failed to connect socket to '/nonexistent/sock'" in rows[name]
    assert rows["VBoxManage"].split()[1:] == ["missing", "VBoxManage", "is", "not", "installed"]


def test_a_program_that_does_not_answer_is_missing_after_its_short_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(host, "VERSION_TIMEOUT", 0.3)
    host_programs(
        monkeypatch, tmp_path / "bin", {**EVERY_PROGRAM, "docker": {DOCKER_VERSION: HANG}}
    )
    start = time.monotonic()
    found = {v.name: v for v in host.versions()}
    assert time.monotonic() - start < 3  # each asked at once: the hang costs its limit only
    assert found["docker engine"] == host.Version("docker engine", None, "no answer within 0.3 s")
    assert found["vagrant"].version == "2.3.4"


def test_vboxmanage_after_its_own_warning() -> None:
    done = load("providers/vboxmanage-version.txt").completed()
    warned = type(done)(
        done.argv,
        0,
        "WARNING: The vboxdrv kernel module is not loaded.\n" + done.stdout,
        "",
    )
    assert host.parse_vboxmanage_version(warned) == [host.Version("VBoxManage", "7.0.20r163906")]


# ---------------------------------------------------------------- who holds a network

DOCKER_NETWORKS = {
    "network ls -q --filter driver=bridge": "host/docker-network-ls.txt",
    "network inspect d7ec6fe979d2 9d66d4f4912e": "host/docker-network-inspect.txt",
}
LIBVIRT_NETWORKS = {
    "-c qemu:///system net-list --all --name": "host/virsh-net-list.txt",
    "-c qemu:///system net-dumpxml default": "host/virsh-net-dumpxml-default.txt",
    "-c qemu:///system net-dumpxml labctl-small-capture": "host/virsh-net-dumpxml.txt",
}


def test_docker_and_libvirt_networks_by_their_bridges() -> None:
    assert docker.parse_docker_networks(load("host/docker-network-inspect.txt").completed()) == {
        "docker0": "bridge",  # the default bridge names its interface in an option
        "br-9d66d4f4912e": "labctl-small-capture",  # br- and the id's first 12 characters
    }
    assert libvirt.parse_libvirt_network(load("host/virsh-net-dumpxml.txt").completed()) == (
        "virbr-lsc",
        "labctl-small-capture",
    )
    assert libvirt.parse_libvirt_network(
        load("host/virsh-net-dumpxml-default.txt").completed()
    ) == ("virbr0", "default")
    assert base.listed_names(load("host/virsh-net-list.txt").completed()) == [
        "default",
        "labctl-small-capture",
    ]


@pytest.fixture
def host_with_networks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The routes captured with a docker and a libvirt network up; docker
    and virsh answering as they did then (or as the test says)."""
    routes = tmp_path / "route"
    routes.write_text(load("host/proc-net-route-networks.txt").stdout + "\n")
    monkeypatch.setattr(hostnet, "ROUTES", routes)
    monkeypatch.setattr(
        providers, "HOLDERS", (PROVIDERS["docker"].network_of, PROVIDERS["libvirt"].network_of)
    )

    def programs(**answers: dict[str, str]) -> None:
        given = {
            "vagrant": EVERY_PROGRAM["vagrant"],  # render looks for it first
            "docker": DOCKER_NETWORKS,
            "virsh": LIBVIRT_NETWORKS,
            **answers,
        }
        host_programs(monkeypatch, tmp_path / "bin", {k: v for k, v in given.items() if v})

    return programs


@pytest.mark.parametrize(
    ("subnet", "named"),
    [
        ("192.168.251", "docker network 'labctl-small-capture', interface br-9d66d4f4912e"),
        ("192.168.252", "libvirt network 'labctl-small-capture', interface virbr-lsc"),
        ("172.17.5", "docker network 'bridge', interface docker0"),
    ],
)
def test_a_refused_subnet_names_the_network_that_holds_it(
    cli, home: Path, host_with_networks, subnet: str, named: str
) -> None:
    host_with_networks()
    done = cli("render", "nodes", "--provider", "docker", "--subnet", subnet)
    assert done.code == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"labctl: error: subnet {subnet}.0/24 overlaps "), done.stderr
    assert first.endswith(f"on this host ({named})")
    assert not home.exists() or not any(home.iterdir())


def test_without_an_answer_the_interface_is_named(
    cli, monkeypatch: pytest.MonkeyPatch, host_with_networks
) -> None:
    monkeypatch.setattr(base, "HOLDER_TIMEOUT", 0.3)
    host_with_networks(docker={"network ls *": HANG}, virsh={})  # no virsh here
    start = time.monotonic()
    done = cli("render", "nodes", "--provider", "docker", "--subnet", "192.168.251")
    assert done.code == 2 and time.monotonic() - start < 5
    assert (
        "overlaps 192.168.251.0/24 on this host (interface br-9d66d4f4912e): another lab, "
        "docker or libvirt network, or VPN"
    ) in done.stderr.splitlines()[0]
