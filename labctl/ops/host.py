"""This host: its pre-flight checks and the docker provider's box image."""

from __future__ import annotations

from collections.abc import Callable

from labctl import box, doctor
from labctl.spec import DOCKER_BOX


def checks() -> list[doctor.Check]:
    """Vagrant, providers, Docker engine, box image, KVM; each with its fix."""
    return doctor.run_all()


def build_box(force: bool, on_line: Callable[[str], None]) -> tuple[str, bool]:
    """(image, built): the box image, and whether it was built now."""
    return DOCKER_BOX, box.build(force=force, on_line=on_line)
