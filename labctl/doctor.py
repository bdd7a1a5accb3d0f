"""Pre-flight checks: what this host has for running labs, and how to fix what it lacks."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

from labctl import process, providers
from labctl.spec import DOCKER_BOX, LIBVIRT_BOX

MIN_VAGRANT = (2, 2, 19)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str
    required: bool = False


def _vagrant() -> Check:
    exe = shutil.which("vagrant")
    if not exe:
        return Check("vagrant", False, "not found", "apt-get install vagrant", required=True)
    out = process.run([exe, "--version"], timeout=60).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
    ok = version >= MIN_VAGRANT
    return Check(
        "vagrant",
        ok,
        out.strip() or "unknown version",
        f"upgrade Vagrant to {'.'.join(map(str, MIN_VAGRANT))} or later",
        required=True,
    )


def run_all() -> list[Check]:
    """Every check, in the order a user would fix them."""
    docker_cli = providers.docker_installed()
    plugin, daemon = providers.libvirt_plugin_installed(), providers.libvirt_daemon_present()
    engine = providers.docker_engine_answers() if docker_cli else False
    linux = providers.docker_guests_reachable()
    checks = [
        _vagrant(),
        Check(
            "provider virtualbox",
            providers.virtualbox_installed(),
            "VBoxManage found" if providers.virtualbox_installed() else "not installed",
            providers.INSTALL_HINTS["virtualbox"],
        ),
        Check(
            "provider libvirt",
            plugin and daemon,
            f"plugin {'found' if plugin else 'missing'}, daemon {'found' if daemon else 'not running'}",
            providers.INSTALL_HINTS["libvirt"] + "; start libvirtd",
        ),
        Check(
            "provider docker",
            docker_cli,
            "docker CLI found" if docker_cli else "not installed",
            providers.INSTALL_HINTS["docker"],
        )
        if linux
        else Check(
            "provider docker",
            False,
            "not a Linux host: its guests' addresses are out of reach",
            "use virtualbox or libvirt on this host",
        ),
        Check(
            "docker engine",
            engine,
            "answers" if engine else "not answering",
            "start it: systemctl start docker (or dockerd &)",
        ),
    ]
    if engine:
        from labctl.box import image_present

        present = image_present()
        checks.append(
            Check(
                "docker box image",
                present,
                DOCKER_BOX if present else "missing",
                "labctl box build (needs root and debootstrap)",
            )
        )
    if plugin and daemon:
        from labctl.box import vagrant_box_present

        here = vagrant_box_present(LIBVIRT_BOX, "libvirt")
        checks.append(
            Check(
                "libvirt box",
                here,
                LIBVIRT_BOX if here else "missing (up builds it: a few minutes)",
                "labctl box build --provider libvirt (needs root and debootstrap)",
            )
        )
    accel = providers.vm_accel()
    checks += [
        Check(
            "kvm",
            accel.kind == "kvm",
            accel.detail,
            "libvirt guests still run, emulated (slower); for KVM: enable virtualization in "
            "the firmware and load kvm_intel or kvm_amd",
        ),
        Check(
            "ssh client",
            shutil.which("ssh") is not None,
            "for `vagrant ssh`",
            "apt-get install openssh-client",
        ),
    ]
    try:
        default = providers.detect()
        checks.append(Check("default provider", True, default, ""))
    except Exception as exc:  # detect() explains itself; doctor reports, never raises
        checks.append(
            Check("default provider", False, str(exc), "install one provider above", required=True)
        )
    return checks
