"""The foundation end to end: a lab's whole life on the docker provider."""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from .conftest import change_counts, containers_of, docker, labctl_argv, shell_on_each


def machine_volumes(lab: str) -> list[str]:
    names = []
    for cid in containers_of(lab):
        for mount in json.loads(docker("inspect", "--format", "{{json .Mounts}}", cid)):
            if mount.get("Type") == "volume":
                names.append(mount["Name"])
    return names


def bridge_ips(lab: str) -> dict[str, str]:
    return {
        m: docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", f"labctl-{lab}-{m}").strip()
        for m in ("node1", "node2")
    }


def move_bridge_addresses(lab: str, ips: dict[str, str]) -> None:
    """Reconnect both machines, the higher address first: docker hands out the
    lowest free address, so that one moves (to the other's, when no lower one
    is free)."""
    for m in ips:
        docker("network", "disconnect", "bridge", f"labctl-{lab}-{m}")
    for m in sorted(ips, key=lambda m: ipaddress.ip_address(ips[m]), reverse=True):
        docker("network", "connect", "bridge", f"labctl-{lab}-{m}")


def reached(config: str, host: str) -> dict[str, str]:
    """Where OpenSSH goes for `host` with this config (`ssh -G`)."""
    with tempfile.NamedTemporaryFile("w") as f:
        f.write(config)
        f.flush()
        out = subprocess.run(
            ["ssh", "-G", "-F", f.name, host], capture_output=True, text=True, check=True
        ).stdout
    keys = ("hostname", "port", "user", "identityfile")
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines()) if k in keys}


def test_nodes_lab_life(labctl, make_lab, lab_home: Path) -> None:
    lab, subnet = make_lab("e2e-nodes")
    up = labctl(
        "up", "nodes", "--name", lab, "--count", "2", "--subnet", subnet, "--provider", "docker"
    )
    assert up.code == 0, up.stderr[-3000:]
    assert "node1" in up.stdout and "running" in up.stdout
    # progress streamed per machine, each line prefixed by it
    assert any(line.strip().startswith("node2 | ") for line in up.stderr.splitlines())

    rows = labctl("status", lab, "--json").json()
    assert [(r["name"], r["state"], r["provider"], r["hostname"], r["ip"]) for r in rows] == [
        ("node1", "running", "docker", "node1", f"{subnet}.101"),
        ("node2", "running", "docker", "node2", f"{subnet}.102"),
    ]
    ran = labctl("ssh", lab, "node1", "-c", "hostname")
    assert (ran.code, ran.stdout.strip()) == (0, "node1")
    # labctl's box carries what the roles install: provisioning installed
    # nothing, only configured; a plain user's systemctl answers as in a VM (a
    # system bus runs), and what the box carries for other roles stays off
    logs = shell_on_each(labctl, lab, "cat /var/lib/labctl/changes.log")
    assert all(": installed " not in log for log in logs.values()), logs
    services = shell_on_each(
        labctl, lab, "systemctl is-active containerd; systemctl is-active mariadb || true"
    )
    assert {vm: out.split() for vm, out in services.items()} == {
        "node1": ["active", "inactive"],
        "node2": ["active", "inactive"],
    }
    ran = labctl("ssh", lab, "node2", "-c", "getent hosts node1; ip -4 -o addr show")
    assert f"{subnet}.101" in ran.stdout and f"{subnet}.102/24" in ran.stdout
    ran = labctl("ssh", lab, "node1", "-c", "exit 7")
    assert ran.code == 7  # the guest's exit status passes through

    # A plain Vagrant project: vagrant works in the folder without labctl.
    folder = lab_home / lab
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    plain = subprocess.run(["vagrant", "status"], cwd=folder, capture_output=True, text=True)
    assert plain.returncode == 0 and "node2                     running (docker)" in plain.stdout
    # labctl reached the machines without asking Vagrant (docker inspect told
    # it), at what Vagrant's own ssh-config says, as OpenSSH reads both
    assert reached(labctl("ssh-config", lab).stdout, "node1") == reached(
        subprocess.run(
            ["vagrant", "ssh-config"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout,
        "node1",
    )

    # Provisioning is idempotent: `up` provisioned; a second run records no change.
    before = change_counts(labctl, lab)
    again = labctl("provision", lab)
    assert again.code == 0, again.stderr[-2000:]
    assert change_counts(labctl, lab) == before
    assert "labctl: changed:" not in again.stderr

    # SSH reaches each container on its own address: no host port is
    # published, so machines started together cannot pick the same one.
    for cid in containers_of(lab):
        assert docker("port", cid) == ""
    # Those addresses are docker's to hand out again. Moved behind labctl's
    # back (as a restart with plain vagrant may do), a cached address leads
    # nowhere or to the other machine, whose host key labctl refuses: either
    # way it asks Vagrant again and reaches the right machines.
    assert labctl("exec", "--lab", lab, "--", "true").code == 0  # cached, keys pinned
    before = bridge_ips(lab)
    move_bridge_addresses(lab, before)
    assert bridge_ips(lab) != before
    ran = labctl("exec", "--lab", lab, "--json", "--", "hostname")
    assert ran.code == 0, ran.stderr
    assert {r["vm"]: r["stdout"].strip() for r in ran.json()} == {
        "node1": "node1",
        "node2": "node2",
    }

    volumes = machine_volumes(lab)
    assert len(volumes) == 2  # one /var/lib/containerd volume per machine

    halted = labctl("halt", lab, "--json")
    assert halted.code == 0
    assert {r["state"] for r in halted.json()} == {"stopped"}
    ran = labctl("ssh", lab, "node1", "-c", "true")
    assert ran.code == 1 and "not running" in ran.stderr

    assert labctl("up", lab).code == 0
    ran = labctl("ssh", lab, "node2", "-c", "hostname; getent hosts node1")
    assert ran.code == 0 and ran.stdout.split()[0] == "node2"
    assert f"{subnet}.101" in ran.stdout  # the lab's hosts survive a restart

    # A second lab side by side: its own subnet, own ports, own machines.
    other, _ = make_lab("e2e-other")
    up2 = labctl(
        "up", "nodes", "--name", other, "--count", "1", "--provider", "docker", "--no-containerd"
    )
    assert up2.code == 0, up2.stderr[-2000:]
    other_rows = labctl("status", other, "--json").json()
    assert other_rows[0]["ip"].rsplit(".", 1)[0] != subnet
    assert (
        labctl("ssh", other, "node1", "-c", "ip -4 -o addr show").stdout.count(other_rows[0]["ip"])
        == 1
    )
    listed = labctl("ls", "--json").json()
    assert {(r["lab"], r["name"]) for r in listed} >= {
        (lab, "node1"),
        (lab, "node2"),
        (other, "node1"),
    }

    gone = labctl("destroy", lab, "--yes")
    assert gone.code == 0, gone.stderr
    assert containers_of(lab) == []
    assert not folder.exists()
    existing = set(docker("volume", "ls", "-q").split())
    assert not existing & set(volumes)
    assert f"vagrant_network_{subnet}.0/24" not in docker("network", "ls", "--format", "{{.Name}}")
    again = labctl("destroy", lab, "--yes")
    assert again.code == 0 and "nothing to destroy" in again.stderr


def test_interrupt_busy_and_recover(labctl, make_lab, lab_home: Path) -> None:
    lab, subnet = make_lab("e2e-int")
    args = [
        "up",
        "nodes",
        "--name",
        lab,
        "--count",
        "1",
        "--subnet",
        subnet,
        "--provider",
        "docker",
        "--no-containerd",
    ]
    proc = subprocess.Popen(
        labctl_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "LABCTL_HOME": str(lab_home)},
    )
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if "Creating the container" in line or "Waiting for machine to boot" in line:
            break
    # Ctrl-C on a terminal: SIGINT to the foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    code = proc.wait(timeout=300)
    assert code == 130, "".join(seen) + rest
    assert "interrupted" in rest

    gone = labctl("destroy", lab, "--yes")
    assert gone.code == 0, gone.stderr
    assert containers_of(lab) == []
    assert not (lab_home / lab).exists()

    up = labctl(*args)
    assert up.code == 0, up.stderr[-2000:]

    # Another vagrant process working on the machine holds Vagrant's own
    # machine-action lock (an flock on this file, named as Vagrant names it).
    # labctl must exit 75 and leave that process alone.
    folder = (lab_home / lab).resolve()
    digest = hashlib.md5(f"{folder}{folder}/.vagrant{'node1'}".encode()).hexdigest()
    vagrant_home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
    lock_file = vagrant_home / "data" / f"lock.machine-action-{digest}.lock"
    with open(lock_file, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = labctl("halt", lab)
    assert busy.code == 75, busy.stderr
    assert "another process is already executing an action" in " ".join(busy.stderr.split())
    assert "kill" not in busy.stderr
    assert labctl("status", lab, "--json").json()[0]["state"] == "running"
    assert labctl("ssh", lab, "node1", "-c", "hostname").stdout.strip() == "node1"


def test_a_container_of_another_lab_by_the_same_name_is_refused(
    labctl, make_lab, lab_home: Path
) -> None:
    """A lab whose folder was deleted leaves containers named after it; a new
    lab by that name stops before writing anything, and leaves them alone."""
    lab, subnet = make_lab("e2e-taken")
    taken = f"labctl-{lab}-node2"
    docker("create", "--name", taken, "--label", f"io.labctl.lab={lab}", "labctl/debian:bookworm")
    try:
        up = labctl(
            "up", "nodes", "--name", lab, "--count", "2", "--subnet", subnet, "--provider", "docker"
        )
        assert up.code == 1
        first, *rest = up.stderr.splitlines()
        assert first == (
            f"labctl: error: docker container {taken} already exists and is not of lab {lab!r}"
        ), up.stderr
        assert rest == [f"  hint: remove it (docker rm -f -v {taken}) or use --name for a new lab"]
        assert not (lab_home / lab).exists()
        assert not (lab_home / ".locks" / f"{lab}.lock").exists()
        assert docker("ps", "-aq", "--filter", f"name=^{taken}$").strip()
    finally:
        docker("rm", "-f", "-v", taken)


def test_a_network_already_on_the_host_is_never_taken(labctl, make_lab, lab_home: Path) -> None:
    """A docker network (say, another user's lab) on the subnet labctl would
    pick: the new lab takes the next one, and naming it is refused."""
    probe, _ = make_lab("e2e-probe")
    rendered = labctl("render", "nodes", "--name", probe, "--count", "1", "--provider", "docker")
    assert rendered.code == 0, rendered.stderr
    wanted = json.loads((lab_home / probe / "lab.json").read_text())["subnet"]
    assert labctl("destroy", probe, "--yes").code == 0
    foreign = "e2e-foreign-net"
    subprocess.run(["docker", "network", "rm", foreign], capture_output=True)
    docker("network", "create", "--subnet", f"{wanted}.0/24", foreign)
    try:
        lab, _ = make_lab("e2e-beside")
        refused = labctl(
            "up", "nodes", "--name", lab, "--count", "1", "--subnet", wanted, "--provider", "docker"
        )
        assert refused.code == 2 and f"subnet {wanted}.0/24 overlaps" in refused.stderr
        assert not (lab_home / lab).exists() and containers_of(lab) == []
        up = labctl(
            "up", "nodes", "--name", lab, "--count", "1", "--no-containerd", "--provider", "docker"
        )
        assert up.code == 0, up.stderr[-2000:]
        taken = json.loads((lab_home / lab / "lab.json").read_text())["subnet"]
        assert taken != wanted
        assert labctl("exec", "--lab", lab, "--", "true").code == 0
    finally:
        subprocess.run(["docker", "network", "rm", foreign], capture_output=True)
