"""Scripts can trust labctl: labs never take a network the host is on, the
lab named twice is still the lab, bad names are bad usage, host keys fail
closed, no password in an error, render works without the provider."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.guest.mysql.rules import mask_secrets
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.lab.spec import spec_to_record
from labctl.ops.lifecycle import split_target
from labctl.transport.hostkeys import HostKeys

from ...conftest import require
from ..captured import DATA, load
from ..labs import topology


def test_routes_parsed_from_the_kernels_table() -> None:
    found = hostnet.parse_routes(load("host/proc-net-route.txt").stdout)
    assert [(str(n.network), n.interface) for n in found] == [
        ("172.17.0.0/16", "docker0"),
        ("192.0.2.0/24", "eth0"),
        ("192.168.100.0/24", "br-f2e62721b25f"),  # another lab's network: not the default route
    ]
    assert hostnet.clash("192.168.100", found) == found[2]
    assert hostnet.clash("192.168.101", found) is None
    wide = [hostnet.HostNetwork(ipaddress.IPv4Network("192.168.0.0/16"), "vpn0")]
    assert hostnet.clash("192.168.56", wide) == wide[0]  # a wider network covers the /24


@pytest.fixture
def routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The host's routes, as the test says they are."""

    def set_routes(*networks: str) -> None:
        rows = ["Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT"]
        for i, net in enumerate(networks):
            n = ipaddress.IPv4Network(net)
            dest = int.from_bytes(n.network_address.packed, "little")
            mask = int.from_bytes(n.netmask.packed, "little")
            rows.append(f"br{i}\t{dest:08X}\t00000000\t0001\t0\t0\t0\t{mask:08X}\t0\t0\t0")
        path = tmp_path / "route"
        path.write_text("\n".join(rows) + "\n")
        monkeypatch.setattr(hostnet, "ROUTES", path)

    return set_routes


def test_a_new_lab_skips_a_network_the_host_is_on(cli, home: Path, routes) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    routes("192.168.56.0/24")  # say, another user's lab
    done = cli("render", "nodes", "--provider", "docker", "--count", "1")
    assert done.code == 0, done.stderr
    assert json.loads((home / "nodes" / "lab.json").read_text())["subnet"] == "192.168.57"


def test_a_subnet_the_host_is_on_is_refused_before_anything_is_written(
    cli, home: Path, routes, tmp_path: Path
) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    routes("192.168.100.0/24")
    done = cli("render", "nodes", "--provider", "docker", "--subnet", "192.168.100")
    assert done.code == 2
    assert "subnet 192.168.100.0/24 overlaps 192.168.100.0/24 on this host (interface br0)" in (
        done.stderr
    )
    assert not home.exists() or not any(home.iterdir())
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: f\nsubnet: 192.168.100\nmachines:\n  n1: {roles: []}\n")
    from_file = cli("render", "-f", str(lab), "--provider", "docker")
    assert (
        from_file.code == 2
        and "lab.yaml:2: subnet: subnet 192.168.100.0/24 overlaps" in from_file.stderr
    )


def write_lab(home: Path, name: str, count: int = 2) -> LabHome:
    spec = topology("nodes", count=count, name=name)
    (home / name).mkdir(parents=True)
    (home / name / "lab.json").write_text(json.dumps(spec_to_record(spec)))
    return LabHome(home)


def test_the_lab_named_twice_is_still_the_lab(home: Path) -> None:
    """LABCTL_LAB=demo and `labctl halt demo` (a teardown script that names it too)."""
    lab_home = write_lab(home, "demo")
    assert split_target(lab_home, ["demo"], "demo") == ("demo", [])
    assert split_target(lab_home, ["demo", "node2"], "demo") == ("demo", ["node2"])
    assert split_target(lab_home, ["node1"], "demo") == ("demo", ["node1"])


@pytest.mark.parametrize(
    "args",
    [
        ("destroy", "../x", "--yes"),
        ("destroy", "Demo", "--yes"),
        ("destroy", "--yes", "--lab", "a/b"),
    ],
)
def test_a_bad_name_is_bad_usage_even_for_destroy(cli, home: Path, args) -> None:
    done = cli(*args)
    assert done.code == 2 and "invalid lab name" in done.stderr
    assert not home.exists()


def test_destroy_of_a_lab_that_is_gone_is_still_nothing_to_do(cli, home: Path) -> None:
    done = cli("destroy", "gone", "--yes")
    assert done.code == 0


@pytest.mark.parametrize(
    "text",
    ["{not json", '["a list"]', '{"node1": {"type": "ssh-ed25519"}}', '{"node1": "x"}'],
)
def test_unreadable_host_keys_fail_closed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "host-keys.json"
    path.write_text(text)
    keys = HostKeys(path)
    with pytest.raises(LabctlError, match="cannot read the pinned host keys") as exc:
        keys.check("node1", "id1", "ssh-ed25519", "AAAA")
    assert exc.value.hint and "delete the file" in exc.value.hint
    with pytest.raises(LabctlError):
        keys.pinned()


def test_missing_host_keys_are_a_fresh_start(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path / "host-keys.json")
    assert keys.check("node1", "id1", "ssh-ed25519", "AAAA") is True
    keys.pin("node1", "id1", "ssh-ed25519", "AAAA")
    assert keys.pinned() == {"node1": ("ssh-ed25519", "AAAA")}


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


def test_render_for_a_provider_this_host_lacks(cli, home: Path, monkeypatch) -> None:
    """A lab prepared for a teammate's laptop: VirtualBox is not here."""
    vagrant = shutil.which("vagrant")
    require(vagrant, "vagrant is not installed")
    monkeypatch.setenv("PATH", str(Path(str(vagrant)).parent))
    assert shutil.which("VBoxManage") is None
    done = cli("render", "nodes", "--provider", "virtualbox")
    assert done.code == 0, done.stderr
    assert "provider virtualbox is not installed here: validated without it" in done.stderr
    assert (home / "nodes" / "Vagrantfile").is_file()
    up = cli("up", "nodes")
    assert up.code == 2 and "provider virtualbox is not installed" in up.stderr


def test_capture_files_name_their_origin() -> None:
    for path in sorted((DATA / "host").glob("*.txt")):
        cap = load(f"host/{path.name}")
        assert cap.command and cap.version and cap.captured


@pytest.fixture
def vagrant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vagrant.d"
    monkeypatch.setenv("VAGRANT_HOME", str(home))
    return home


def test_a_box_that_is_here_is_enough(vagrant_home: Path, monkeypatch) -> None:
    from labctl.providers import base as box

    (vagrant_home / "boxes" / "debian-VAGRANTSLASH-bookworm64" / "0" / "libvirt").mkdir(
        parents=True
    )
    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")  # nothing listens
    box.check_vm_box("debian/bookworm64", "libvirt")
    with pytest.raises(LabctlError):
        box.check_vm_box("debian/bookworm64", "virtualbox")  # here for libvirt only


def test_a_box_neither_here_nor_downloadable_fails_before_anything(
    vagrant_home: Path, monkeypatch
) -> None:
    from labctl.providers import base as box

    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")
    with pytest.raises(LabctlError) as exc:
        box.check_vm_box("debian/bookworm64", "libvirt")
    assert exc.value.exit_code == 1
    assert exc.value.message == (
        "box 'debian/bookworm64' for libvirt is not on this host and "
        "http://127.0.0.1:1 cannot be reached"
    )
    assert exc.value.hint and "vagrant box add debian/bookworm64" in exc.value.hint


def test_a_box_server_that_answers_is_left_to_vagrant(vagrant_home: Path, monkeypatch) -> None:
    import socket

    from labctl.providers import base as box

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("VAGRANT_SERVER_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        box.check_vm_box("debian/bookworm64", "libvirt")  # downloadable: Vagrant will fetch it


def test_up_without_a_box_stops_before_anything_starts(
    cli, home: Path, vagrant_home: Path, monkeypatch
) -> None:
    from labctl.providers import libvirt

    require(shutil.which("vagrant"), "vagrant is not installed")
    require(libvirt.plugin_installed(), "vagrant-libvirt is not installed")
    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")
    done = cli("up", "nodes", "--provider", "libvirt", "--box", "debian/bookworm64")
    assert done.code == 1
    assert "is not on this host and http://127.0.0.1:1 cannot be reached" in done.stderr
    assert len(done.stderr) < 600  # a line and a hint, not Vagrant's page
    assert not (home / "nodes").exists()


# ---------------------------------------------------------------- host-wide subnet claims


def test_a_claim_keeps_a_subnet_from_every_other_home(tmp_path: Path) -> None:
    claims = hostnet.SubnetClaims(tmp_path / "host")
    one, two = tmp_path / "one", tmp_path / "two"
    claims.claim("192.168.56", one, "a", "id-a")
    claims.claim("192.168.56", one, "a", "id-a")  # again by its holder: fine
    with pytest.raises(hostnet.SubnetTaken, match=rf"lab 'a' of {one}") as exc:
        claims.claim("192.168.56", two, "a", "id-b")
    assert exc.value.exit_code == 2
    claims.claim("192.168.56", two, "old", "id-c", strict=False)  # a lab older than claims
    assert sorted(claims.others(two, "x")) == ["192.168.56"]
    claims.claim("192.168.57", one, "a", "id-a")  # a lab holds one subnet: the old is freed
    assert sorted(claims.others(two, "x")) == ["192.168.57"]
    claims.release(one, "a")
    assert claims.others(two, "x") == {}


def test_a_claim_lives_while_its_lab_or_its_maker_does(tmp_path: Path) -> None:
    import subprocess
    import sys

    claims = hostnet.SubnetClaims(tmp_path / "host")
    home = tmp_path / "home"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    (claims.folder).mkdir(parents=True)
    for subnet, lab in (("192.168.60", "made"), ("192.168.61", "abandoned")):
        (claims.folder / f"{subnet}.json").write_text(
            json.dumps(
                {"subnet": subnet, "home": str(home), "lab": lab, "lab_id": lab, "pid": dead_pid}
            )
        )
    (home / "made").mkdir(parents=True)
    (home / "made" / "lab.json").write_text(json.dumps({"id": "made"}))
    # an up still running (this process) holds its subnet before its record exists
    claims.claim("192.168.62", home, "making", "making")
    assert sorted(claims.others(tmp_path, "x")) == ["192.168.60", "192.168.62"]
    assert not (claims.folder / "192.168.61.json").exists()  # the abandoned claim is gone


def test_a_new_lab_skips_a_subnet_another_home_claimed(cli, home: Path, tmp_path: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    other = tmp_path / "other-home"
    hostnet.SubnetClaims().claim("192.168.56", other, "theirs", "id")
    done = cli("render", "nodes", "--provider", "docker", "--count", "1")
    assert done.code == 0, done.stderr
    assert json.loads((home / "nodes" / "lab.json").read_text())["subnet"] == "192.168.57"
    mine = hostnet.SubnetClaims().others(other, "theirs")
    assert list(mine) == ["192.168.57"] and mine["192.168.57"].home == str(home)
    # asked for by name, it is refused with its holder, and nothing is written
    done = cli("render", "nodes", "--name", "two", "--subnet", "192.168.56", "--provider", "docker")
    assert done.code == 2
    assert f"subnet 192.168.56.0/24 is already used by lab 'theirs' of {other}" in done.stderr
    assert not (home / "two").exists()
    # destroy frees the subnet
    assert cli("destroy", "nodes", "--yes").code == 0
    assert hostnet.SubnetClaims().others(other, "theirs") == {}


def test_validate_shows_the_addresses_up_would_choose_on_this_host(
    cli, home: Path, routes, tmp_path: Path
) -> None:
    """validate reads the host's networks as up does (and needs no Vagrant):
    the machines and addresses it shows are the ones up would make here."""
    routes("192.168.56.0/24", "192.168.57.0/24")
    (tmp_path / "lab.yaml").write_text("name: t\nmachines:\n  web: {}\n  app: {count: 2}\n")
    shown = cli("validate", "-f", str(tmp_path / "lab.yaml"), "--json")
    assert shown.code == 0, shown.stderr
    addresses = {m["name"]: m["ip"] for m in json.loads(shown.stdout)}
    assert addresses == {"web": "192.168.58.10", "app1": "192.168.58.11", "app2": "192.168.58.12"}
    # what up renders, through the same preparation (render --stdout writes nothing)
    rendered = cli("render", "-f", str(tmp_path / "lab.yaml"), "--provider", "docker", "--stdout")
    assert rendered.code == 0, rendered.stderr
    ips = re.findall(
        r"config.vm.define \'([a-z0-9-]+)\'.*?ip: \'([0-9.]+)\'", rendered.stdout, re.S
    )
    assert dict(ips) == addresses
