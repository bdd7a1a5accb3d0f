"""VirtualBox: VMs on a laptop, from Debian's box on Vagrant Cloud (labctl
builds none); it cannot run on labctl's CI host."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from labctl.local import process
from labctl.providers.base import Check, LiveState, NoAnswer, Provider, Runner, run_tool

_RUNNING_VM = re.compile(r'^".*"\s+\{([0-9a-fA-F-]+)\}\s*$')
_VMSTATE = re.compile(r'^VMState="(.+?)"\s*$', re.M)


def installed() -> bool:
    return shutil.which("VBoxManage") is not None


def parse_vbox_running(done: process.Completed) -> set[str]:
    """The uuids `VBoxManage list runningvms` names."""
    if done.returncode != 0:
        raise NoAnswer(f"VBoxManage: {done.stderr.strip() or done.returncode}")
    return {m.group(1).lower() for x in done.stdout.splitlines() if (m := _RUNNING_VM.match(x))}


def parse_vbox_info(done: process.Completed) -> str:
    """VirtualBox's VMState word (Vagrant's state for the VM), or not_created."""
    if done.returncode != 0:
        if "VBOX_E_OBJECT_NOT_FOUND" in done.stderr or "Could not find" in done.stderr:
            return "not_created"
        raise NoAnswer(f"VBoxManage: {done.stderr.strip() or done.returncode}")
    if re.search(r'^name="<inaccessible>"$', done.stdout, re.M):
        return "inaccessible"
    m = _VMSTATE.search(done.stdout)
    return m.group(1) if m else "unknown"


def ask_virtualbox(ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    """One listing of the running VMs; the others (usually none) one by one."""
    if not ids:
        return {}
    running = parse_vbox_running(run(["VBoxManage", "list", "runningvms"]))
    rest = [i for i in ids if i.lower() not in running]

    def info(ident: str) -> str:
        return parse_vbox_info(run(["VBoxManage", "showvminfo", ident, "--machinereadable"]))

    with process.interruptible(), ThreadPoolExecutor(max_workers=max(1, min(8, len(rest)))) as pool:
        others = dict(zip(rest, pool.map(info, rest), strict=True))
    return {i: LiveState("", others.get(i, "running"), "virtualbox") for i in ids}


class VirtualBox(Provider):
    name = "virtualbox"
    install_hint = (
        "install VirtualBox (Debian/Ubuntu: the virtualbox package from "
        "https://www.virtualbox.org/wiki/Linux_Downloads)"
    )

    def installed(self) -> bool:
        return installed()

    def checks(self) -> tuple[list[Check], list[Check]]:
        here = installed()
        found = "VBoxManage found" if here else "not installed"
        return [Check("provider virtualbox", here, found, self.install_hint)], []

    def states(self, key: str, ids: Sequence[str], run: Runner) -> dict[str, LiveState]:
        return ask_virtualbox(ids, run)
