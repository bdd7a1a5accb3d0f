"""Real VMs: the libvirt provider end to end, with labctl's own box.

KVM where the host has it, else QEMU emulating the CPU (this CI host: its
/dev/kvm is PVM). Emulation makes each boot take a minute, so only what needs
a VM runs here: a real boot, real NICs on a private network, Vagrant's SSH
through libvirt's management network, halt and a cold boot, a kernel of the
guest's own (netem), and a destroy that leaves nothing. Everything else stays
on the docker provider.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.providers import base as box
from labctl.providers import libvirt as providers
from labctl.providers.libvirt_box import LIBVIRT_BOX

from ..conftest import require
from .conftest import (
    LIBVIRT_LABS,
    URI,
    Done,
    Labctl,
    fresh_subnet,
    libvirt_residue,
    libvirt_sweep,
    services_by_testinfra,
    virsh,
)

NODES, PAIR = LIBVIRT_LABS

VM_TIMEOUT = 1800  # an emulated `up` of two VMs with packages: about 3 minutes


@pytest.fixture(scope="module")
def vm_parts(labctl: Labctl) -> None:
    """libvirt answering, QEMU (KVM or emulation), labctl's box: else skip
    with the reason (a failure under LABCTL_REQUIRE_REAL)."""
    require(shutil.which("virsh"), "virsh is not installed (apt-get install libvirt-clients)")
    answers = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, timeout=120)
    require(answers.returncode == 0, "libvirtd is not answering (start virtlogd and libvirtd)")
    accel = providers.vm_accel()
    require(accel.kind, f"this host cannot run VMs: {accel.detail}")
    require(
        box.vagrant_box_present(LIBVIRT_BOX, "libvirt"),
        "labctl's libvirt box is missing: labctl box build --provider libvirt",
    )


def up_vms(labctl: Labctl, *args: str) -> Done:
    return labctl(*args, "--subnet", fresh_subnet(), "--provider", "libvirt", timeout=VM_TIMEOUT)


def destroy_clean(labctl: Labctl, lab: str) -> None:
    done = labctl("destroy", lab, "--yes")
    left = libvirt_residue(lab)
    libvirt_sweep(lab)
    assert done.code == 0, done.stderr
    assert left == {"domains": [], "volumes": [], "networks": []}, f"destroy left {left}"


@pytest.fixture(scope="module")
def nodes(labctl: Labctl, vm_parts: None) -> Iterator[Done]:
    """Two containerd VMs for the module; the last test destroys them."""
    try:
        yield up_vms(labctl, "up", "nodes", "--count", "2", "--name", NODES)
    finally:
        if libvirt_residue(NODES)["domains"]:
            labctl("destroy", NODES, "--yes")
            libvirt_sweep(NODES)


def states(labctl: Labctl, lab: str) -> dict[str, str]:
    done = labctl("status", lab, "--json")
    assert done.code == 0, done.stderr
    return {row["name"]: row["state"] for row in done.json()}


def test_up_boots_real_vms_and_says_how(labctl: Labctl, nodes: Done, lab_home: Path) -> None:
    assert nodes.code == 0, nodes.stderr[-3000:]
    assert f"libvirt guests run with {providers.vm_accel().detail}" in nodes.stdout + nodes.stderr
    assert states(labctl, NODES) == {"node1": "running", "node2": "running"}
    domains = virsh("list", "--name").split()
    assert {f"labctl-{NODES}-node1", f"labctl-{NODES}-node2"} <= set(domains)
    xml = virsh("dumpxml", f"labctl-{NODES}-node1")
    want = "kvm" if providers.vm_accel().kind == "kvm" else "qemu"
    assert re.search(rf"<domain type=.{want}.", xml)
    # the lab's own networks: private, and management on the /24 labctl chose
    record = json.loads((lab_home / NODES / "lab.json").read_text())
    mgmt = virsh("net-dumpxml", f"labctl-{NODES}-mgmt")
    assert f"<ip address='{record['mgmt_subnet']}.1'" in mgmt
    assert record["mgmt_subnet"] != record["subnet"]


def test_ssh_answers_from_the_vm(labctl: Labctl, nodes: Done) -> None:
    done = labctl("ssh", NODES, "node1", "-c", "systemd-detect-virt; uname -r; hostname")
    assert done.code == 0, done.stderr
    virt, kernel, hostname = done.stdout.split()
    assert virt in ("qemu", "kvm")  # a VM with a kernel of its own, not a container
    assert kernel != subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert hostname == "node1"


def test_testinfra_sees_containerd_run_without_sudo(labctl: Labctl, nodes: Done) -> None:
    found = services_by_testinfra(labctl, NODES, "node2", ["containerd", "mariadb"])
    assert found == {"containerd": True, "mariadb": False}  # the box carries it, not enabled


def test_node1_reaches_node2_on_the_private_network(labctl: Labctl, nodes: Done) -> None:
    ip2 = {row["name"]: row["ip"] for row in labctl("status", NODES, "--json").json()}["node2"]
    done = labctl("ssh", NODES, "node1", "-c", f"ping -c 2 -W 5 {ip2} && ip -4 -o addr show")
    assert done.code == 0, done.stdout + done.stderr
    assert "2 received" in done.stdout
    own = ip2.rsplit(".", 1)[0] + ".101"
    assert re.search(rf"eth1\s+inet {re.escape(own)}/24", done.stdout)


def test_ctr_across_both_vms(labctl: Labctl, nodes: Done, tmp_path: Path) -> None:
    image = tmp_path / "busybox.tar"
    subprocess.run(["python3", "tools/oci.py", str(image)], check=True, capture_output=True)
    imported = labctl("ctr", "--lab", NODES, "images", "import", str(image))
    assert imported.code == 0, imported.stderr
    ran = labctl(
        "ctr", "--lab", NODES, "run", "docker.io/labctl/busybox:latest", "web", "sleep", "86400"
    )
    assert ran.code == 0, ran.stderr
    ps = labctl("ctr", "--lab", NODES, "ps", "--json")
    assert ps.code == 0, ps.stderr
    running = {(row["vm"], row["container"]) for row in ps.json() if row["status"] == "RUNNING"}
    assert running == {("node1", "web"), ("node2", "web")}


def test_halt_then_a_cold_boot(labctl: Labctl, nodes: Done) -> None:
    halted = labctl("halt", NODES, timeout=VM_TIMEOUT)
    assert halted.code == 0, halted.stderr
    assert states(labctl, NODES) == {"node1": "shutoff", "node2": "shutoff"}
    assert virsh("list", "--name").split() == [
        d for d in virsh("list", "--name").split() if not d.startswith(f"labctl-{NODES}-")
    ]
    again = labctl("up", NODES, timeout=VM_TIMEOUT)
    assert again.code == 0, again.stderr[-3000:]
    assert states(labctl, NODES) == {"node1": "running", "node2": "running"}
    done = labctl("exec", "--lab", NODES, "--json", "--", "cat", "/proc/uptime")
    assert done.code == 0, done.stderr
    assert all(float(row["stdout"].split()[0]) < 600 for row in done.json())  # booted anew


def test_destroy_leaves_nothing(labctl: Labctl, nodes: Done) -> None:
    destroy_clean(labctl, NODES)
    assert labctl("destroy", NODES, "--yes").code == 0  # idempotent


def test_mysql_pair_on_vms_with_netem(labctl: Labctl, vm_parts: None) -> None:
    """A primary and a replica in real VMs, replicating; and netem, which
    only a guest with a kernel of its own has, delaying one of them."""
    try:
        up = up_vms(labctl, "mysql-pair", "--replicas", "1", "--no-containerd", "--name", PAIR)
        assert up.code == 0, up.stderr[-3000:]
        check = labctl("mysql", "check", "--lab", PAIR)
        assert check.code == 0, check.stdout + check.stderr
        impaired = labctl("link", "impair", "replica1", "--delay", "300ms", "--lab", PAIR)
        assert impaired.code == 0, impaired.stderr
        assert "replica1: eth1: delay 300ms" in impaired.stderr, impaired.stderr
        listed = labctl("link", "ls", "--lab", PAIR, "--json").json()
        assert {r["vm"]: r["impaired"] for r in listed} == {
            "primary": None,
            "replica1": "delay 300ms",
        }, listed
        ips = {row["name"]: row["ip"] for row in labctl("status", PAIR, "--json").json()}
        rtt = labctl("ssh", PAIR, "primary", "-c", f"ping -c 3 -W 5 {ips['replica1']}")
        assert rtt.code == 0, rtt.stdout + rtt.stderr
        found = re.search(r"rtt min/avg/max/mdev = [\d.]+/([\d.]+)/", rtt.stdout)
        assert found and float(found.group(1)) >= 300, rtt.stdout
        status = labctl("mysql", "status", "--lab", PAIR, "--json")
        assert status.code == 0, status.stderr
        cleared = labctl("link", "clear", "replica1", "--lab", PAIR)
        assert cleared.code == 0, cleared.stderr
        listed = labctl("link", "ls", "--lab", PAIR, "--json").json()
        assert [r["impaired"] for r in listed] == [None, None], listed
        verify = labctl("mysql", "verify", "--lab", PAIR)
        assert verify.code == 0, verify.stdout + verify.stderr
    finally:
        destroy_clean(labctl, PAIR)
