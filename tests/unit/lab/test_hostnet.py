"""The host's networks (lab.hostnet): labs never take a network the host is
on, and a subnet claimed by a lab of any home is no other lab's."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from pathlib import Path

import pytest

from labctl.lab import hostnet

from ...conftest import require
from ..captured import load


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
