"""vagrant-libvirt: real VMs under QEMU, with KVM where this host has it and
emulated otherwise; a daemon on this host or another (`libvirt_uri`), two
networks of the lab's own (its private /24 and a management /24)."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.events import OnEvent, info
from labctl.lab.spec import DEFAULT_LIBVIRT_URI, LabSpec
from labctl.local import process
from labctl.providers import libvirt_box, packages
from labctl.providers.base import (
    VM_BOX,
    Check,
    LiveState,
    NoAnswer,
    Provider,
    Runner,
    ask_quietly,
    check_vm_box,
    listed_names,
    run_tool,
    vagrant_box_present,
)
from labctl.providers.libvirt_box import LIBVIRT_BOX
from labctl.providers.packages import BoxInfo


def is_remote(libvirt_uri: str | None) -> bool:
    """Whether a libvirt URI names another host (qemu+ssh://host/system...)."""
    if not libvirt_uri or "://" not in libvirt_uri:
        return False
    return not libvirt_uri.split("://", 1)[1].startswith("/")


LIBVIRT_SOCKETS = ("/var/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock")


def plugin_installed() -> bool:
    """Without running vagrant (a second and more): Debian's packaged plugin,
    or one installed with `vagrant plugin install`."""
    if glob.glob("/usr/share/rubygems-integration/all/gems/vagrant-libvirt-*"):
        return True
    plugins = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d")) / "plugins.json"
    try:
        return "vagrant-libvirt" in json.loads(plugins.read_text()).get("installed", {})
    except (OSError, ValueError):
        return False


def daemon_present() -> bool:
    return any(os.path.exists(s) for s in LIBVIRT_SOCKETS)


@dataclass(frozen=True)
class Accel:
    """How libvirt guests run on this host: "kvm" (hardware virtualization),
    "tcg" (QEMU emulates the CPU: slower, no nested virtualization) or ""
    (neither: no QEMU). `detail` says why, for doctor and up."""

    kind: str
    detail: str
    why: str = ""  # emulated: the reason in a word or two, for one line

    @property
    def driver(self) -> str:
        """vagrant-libvirt's domain type."""
        return "kvm" if self.kind == "kvm" else "qemu"


MODULES = Path("/sys/module")
KVM_DEVICE = "/dev/kvm"
QEMU = "qemu-system-x86_64"


def vm_accel(modules: Path = MODULES, device: str = KVM_DEVICE, qemu: str = QEMU) -> Accel:
    """KVM where /dev/kvm is usable and backed by the hardware's own module;
    PVM's kvm_pvm runs only guest kernels built for it (a stock one hangs), so
    there, as without /dev/kvm, QEMU emulates."""
    if not shutil.which(qemu):
        return Accel("", f"{qemu} is not installed (apt-get install qemu-system-x86)")
    hardware = [m for m in ("kvm_intel", "kvm_amd") if (modules / m).is_dir()]
    usable = os.access(device, os.R_OK | os.W_OK)
    if usable and hardware:
        return Accel("kvm", f"KVM ({hardware[0]})")
    if usable and (modules / "kvm_pvm").is_dir():
        return Accel(
            "tcg",
            "QEMU emulation: /dev/kvm is PVM (kvm_pvm), which boots no stock guest kernel",
            "PVM",
        )
    if usable:
        return Accel("kvm", "KVM")
    if os.path.exists(device):
        return Accel(
            "tcg", f"QEMU emulation: {device} is not usable by this user", f"{device} not usable"
        )
    return Accel("tcg", f"QEMU emulation: no {device} (no hardware virtualization)", "no KVM")


# ---------------------------------------------------------------- states

# virDomainState, in vagrant-libvirt's words (fog-libvirt's names, '-' as '_')
LIBVIRT_STATES = (
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutting_down",
    "shutoff",
    "crashed",
    "pmsuspended",
)
_UUID_LINE = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s+(\S.*)$"
)
_DOMAIN_LINE = re.compile(r"^Domain: '(.*)'$")
_STATE_LINE = re.compile(r"^\s*state\.state=(\d+)$")


def virsh_command(uri: str) -> list[str]:
    # one virsh, two commands: the uuid of each domain, then each domain's state
    return ["virsh", "-c", uri, "list --all --uuid --name; domstats --state"]


def parse_virsh(done: process.Completed) -> dict[str, str]:
    """domain uuid -> vagrant-libvirt's state word, for every domain."""
    if done.returncode != 0:
        lines = [x.strip() for x in done.stderr.splitlines() if x.strip()]
        raise NoAnswer(f"virsh: {lines[-1] if lines else f'exit status {done.returncode}'}")
    uuids: dict[str, str] = {}
    states: dict[str, str] = {}
    domain = None
    for line in done.stdout.splitlines():
        if m := _UUID_LINE.match(line.strip()):
            uuids[m.group(2).strip()] = m.group(1)
        elif m := _DOMAIN_LINE.match(line.strip()):
            domain = m.group(1)
        elif (m := _STATE_LINE.match(line)) and domain is not None:
            number = int(m.group(1))
            states[domain] = LIBVIRT_STATES[number] if number < len(LIBVIRT_STATES) else "unknown"
    return {uuid: states.get(name, "unknown") for name, uuid in uuids.items()}


def parse_libvirt_network(done: process.Completed) -> tuple[str, str] | None:
    """`virsh net-dumpxml NAME` -> (bridge interface, network name)."""
    import xml.etree.ElementTree as ET  # only once a subnet is refused

    try:
        root = ET.fromstring(done.stdout)
    except ET.ParseError:
        return None
    bridge, name = root.find("bridge"), root.findtext("name")
    if bridge is None or not bridge.get("name") or not name:
        return None
    return bridge.get("name", ""), name


def ask_libvirt(uri: str, ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    if not ids:
        return {}
    states = parse_virsh(run(virsh_command(uri)))
    return {
        ident: LiveState("", states.get(ident.lower(), "not_created"), "libvirt") for ident in ids
    }


# ---------------------------------------------------------------- the provider


class Libvirt(Provider):
    name = "libvirt"
    install_hint = (
        "install the vagrant-libvirt plugin and libvirt (Debian/Ubuntu: apt-get "
        "install vagrant-libvirt libvirt-daemon-system; elsewhere: vagrant plugin install "
        "vagrant-libvirt)"
    )
    connects_by_uri = True
    own_management_network = True

    def installed(self) -> bool:
        return plugin_installed()

    def usable(self) -> bool:
        return plugin_installed() and daemon_present()

    def checks(self) -> tuple[list[Check], list[Check]]:
        plugin, daemon = plugin_installed(), daemon_present()
        found = Check(
            "provider libvirt",
            plugin and daemon,
            f"plugin {'found' if plugin else 'missing'}, daemon {'found' if daemon else 'not running'}",
            self.install_hint + "; start libvirtd",
        )
        ready = []
        if plugin and daemon:
            here = vagrant_box_present(LIBVIRT_BOX, self.name)
            ready.append(
                Check(
                    "libvirt box",
                    here,
                    LIBVIRT_BOX if here else "missing (up builds it: a few minutes)",
                    "labctl box build --provider libvirt (needs root and debootstrap)",
                )
            )
        accel = vm_accel()
        ready.append(
            Check(
                "kvm",
                accel.kind == "kvm",
                accel.detail,
                "libvirt guests still run, emulated (slower); for KVM: enable virtualization in "
                "the firmware and load kvm_intel or kvm_amd",
            )
        )
        return [found], ready

    def default_box(self, libvirt_uri: str | None = None) -> str:
        """labctl's own box on this host (QEMU boots the box's kernel from this
        host's disk), Debian's on a remote one."""
        return VM_BOX if is_remote(libvirt_uri) else LIBVIRT_BOX

    def accel(self, spec: LabSpec) -> str:
        """A remote libvirt host is taken to have KVM: only this host can be looked at."""
        return "kvm" if is_remote(spec.libvirt_uri) else vm_accel().kind

    def emulates(self) -> str:
        accel = vm_accel()
        return "" if accel.kind == "kvm" else accel.why or "no QEMU"

    def boxes(self) -> list[BoxInfo]:
        found = libvirt_box.box_info()
        return [found] if found else []

    def ready(
        self, spec: LabSpec, on_event: OnEvent, created: frozenset[str] = frozenset()
    ) -> None:
        if not is_remote(spec.libvirt_uri):
            on_event(info("", f"libvirt guests run with {vm_accel().detail}"))
        # the machines to make need their box; made ones have their own disks
        how = "labctl box build --provider libvirt"
        for name in sorted({m.box for m in spec.machines if m.name not in created}):
            if name != LIBVIRT_BOX:
                check_vm_box(name, self.name)
            elif not vagrant_box_present(name, self.name):
                on_event(info("", f"box {name} is missing: building it ({how})"))
                libvirt_box.build(name, on_event=on_event)
            elif found := libvirt_box.box_info(name):
                said = packages.notice(name, found.state, how)
                if said:
                    on_event(info("", said))

    def state_key(self, spec: LabSpec) -> str:
        return spec.libvirt_uri or DEFAULT_LIBVIRT_URI

    def states(self, key: str, ids: Sequence[str], run: Runner) -> dict[str, LiveState]:
        return ask_libvirt(key, ids, run)

    def build_box(self, force: bool, on_event: OnEvent) -> tuple[str, bool]:
        self.require()
        built = libvirt_box.build(force=force, on_event=on_event)
        return (f"{LIBVIRT_BOX} {built.version}" if built else LIBVIRT_BOX), built is not None

    def vagrantfile(self, spec: LabSpec, accel: str) -> dict[str, Any]:
        return {"emulated": accel != "kvm"}

    def network_of(self, interface: str) -> str | None:
        """libvirt names each network's bridge in its XML (virbr0, or the one given)."""
        virsh = ["virsh", "-c", DEFAULT_LIBVIRT_URI]
        for network in listed_names(ask_quietly([*virsh, "net-list", "--all", "--name"])):
            dumped = ask_quietly([*virsh, "net-dumpxml", network])
            found = parse_libvirt_network(dumped) if dumped else None
            if found and found[0] == interface:
                return f"libvirt network {found[1]!r}"
        return None
