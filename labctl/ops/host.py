"""This host: its pre-flight checks, the versions of what labctl runs, and
labctl's own boxes."""

from __future__ import annotations

import os
from collections.abc import Callable

from labctl import __version__, box, doctor, providers
from labctl.errors import SpecError
from labctl.spec import DOCKER_BOX, LIBVIRT_BOX, check_provider, default_box


def checks() -> list[doctor.Check]:
    """Vagrant, providers, Docker engine, box image, KVM; each with its fix."""
    return doctor.run_all()


def versions() -> list[providers.Version]:
    """labctl's own version, then Vagrant's and each provider's as this host
    answers (a missing one is a row that says so)."""
    return [providers.Version("labctl", __version__), *providers.versions()]


def build_box(
    provider: str | None, force: bool, on_line: Callable[[str], None]
) -> tuple[str, bool]:
    """(box, built): labctl's box for `provider` (default: this host's), and
    whether it was built now."""
    given = provider or os.environ.get("LABCTL_PROVIDER")
    chosen = check_provider(given) if given else providers.detect()
    if chosen == "docker":
        return DOCKER_BOX, box.build(force=force, on_line=on_line)
    if chosen == "libvirt":
        from labctl import libvirt_box

        providers.require("libvirt")
        built = libvirt_box.build(force=force, on_line=on_line)
        return (f"{LIBVIRT_BOX} {built.version}" if built else LIBVIRT_BOX), built is not None
    raise SpecError(
        f"labctl builds no box for {chosen}: its labs use {default_box(chosen)} from Vagrant Cloud",
        hint="--provider docker or libvirt",
    )
