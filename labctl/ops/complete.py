"""Words a shell may complete: lab names, topologies and machines.

Read from lab.json files only (never Vagrant: a Tab press must answer at
once), and never an error: whatever cannot be read completes to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from labctl.errors import LabctlError
from labctl.lab.home import LabHome
from labctl.labfile.topologies import TOPOLOGIES


def labs(home: LabHome) -> list[str]:
    try:
        return home.names()
    except (LabctlError, OSError):
        return []


def labs_and_topologies(home: LabHome) -> list[str]:
    return [*TOPOLOGIES, *(n for n in labs(home) if n not in TOPOLOGIES)]


def machines(home: LabHome, lab: str | None) -> list[str]:
    """The machines of `lab`, or of the only lab when none is named."""
    try:
        return home.load(home.resolve(lab)).machine_names()
    except Exception:  # a broken lab.json must not break the user's shell
        return []


def target(home: LabHome, typed: Sequence[str], lab: str | None) -> list[str]:
    """What may come next in `[LAB] [MACHINE...]` after the words `typed`."""
    if lab is None and typed and typed[0] in labs(home):
        lab, typed = typed[0], typed[1:]
    words = machines(home, lab)
    if lab is None and not typed:
        words = [*labs(home), *words]
    return [w for w in words if w not in typed]


def ssh_target(home: LabHome, typed: Sequence[str], lab: str | None) -> list[str]:
    """What may come next in `ssh [LAB] MACHINE`: nothing after the machine."""
    named_lab = lab is None and len(typed) == 1 and typed[0] in labs(home)
    if typed and not named_lab:
        return []
    return target(home, typed, lab)


def words(kind: str, home: LabHome, typed: Sequence[str], lab: str | None) -> list[str]:
    """Words of `kind` that may come after the words `typed`; `lab` is --lab."""
    by_kind = {
        "lab": lambda: labs(home),
        "lab-or-topology": lambda: labs_and_topologies(home),
        "machine": lambda: machines(home, lab),
        "target": lambda: target(home, typed, lab),
        "ssh-target": lambda: ssh_target(home, typed, lab),
    }
    return by_kind[kind]()
