"""The docker provider's box: a Debian image with systemd as PID 1 and sshd,
built offline from Debian's packages (debootstrap + docker import).

Vagrant's docker provider runs an image, not a box file; with `has_ssh` it
then treats the container like any VM, so provision scripts written for
VirtualBox or libvirt guests (systemctl, apt) run unchanged.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from labctl import process
from labctl.errors import LabctlError
from labctl.providers import debootstrap
from labctl.providers.base import Sink

DOCKER_BOX = "labctl/debian:bookworm"
# $1: the root file system, $2: the image to make of it
IMPORT_PIPE = 'tar -C "$1" -c . | docker import --change \'CMD ["/sbin/init"]\' - "$2"'


def image_present(image: str = DOCKER_BOX) -> bool:
    return process.run(["docker", "image", "inspect", image], timeout=60).returncode == 0


def build(image: str = DOCKER_BOX, force: bool = False, on_line: Sink | None = None) -> bool:
    """Build `image`; False when it is already there and not forced."""
    if not force and image_present(image):
        return False
    debootstrap.require_tools("debootstrap", "docker", "tar")
    keys = debootstrap.vagrant_public_keys()
    work = Path(tempfile.mkdtemp(prefix="labctl-box-", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        debootstrap.debootstrap(rootfs, debootstrap.PACKAGES, on_line)
        debootstrap.customize(rootfs, keys)
        if on_line:
            on_line(f"importing {rootfs} as docker image {image}")
        # one child, under process.run's time limit and Ctrl-C: the pipe in bash
        imported = process.run(
            ["bash", "-o", "pipefail", "-c", IMPORT_PIPE, "box", str(rootfs), image], timeout=1800
        )
        if imported.returncode != 0:
            raise LabctlError(f"docker import failed: {imported.stderr.strip()[-300:]}")
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)
