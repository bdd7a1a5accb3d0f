"""The Vagrant providers labctl runs labs on: one module each, one row each
in PROVIDERS, whose order is the order `detect` tries them in.

Everything labctl knows of a provider is its `Provider` (base.py): whether
this host has it and how to install it, doctor's checks, what `up` needs
ready, the machines' states from its own tool (states.py asks them), its
box, what it adds to the Vagrantfile, and its rules for the plan and links.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import SpecError
from labctl.lab.hostnet import Lookup
from labctl.providers.base import Provider
from labctl.providers.docker import Docker
from labctl.providers.libvirt import Libvirt
from labctl.providers.packages import BoxInfo
from labctl.providers.virtualbox import VirtualBox

PROVIDERS: dict[str, Provider] = {p.name: p for p in (VirtualBox(), Libvirt(), Docker())}
NAMES = tuple(PROVIDERS)
# who holds a refused subnet: every provider asked (ops hands these to
# hostnet.holder, a layer below), the table's last first, so docker, whose
# answer is the quickest, before libvirt; one without networks answers None
HOLDERS: tuple[Lookup, ...] = tuple(p.network_of for p in reversed(PROVIDERS.values()))


def get(name: str) -> Provider:
    """The provider of that name; SpecError listing them for another name."""
    if name not in PROVIDERS:
        raise SpecError(f"unknown provider {name!r} (providers: {', '.join(NAMES)})")
    return PROVIDERS[name]


@dataclass(frozen=True)
class Choice:
    """The provider a lab takes when nothing names one, and the one line
    saying why when it is not the first usable one ("" otherwise)."""

    name: str
    note: str = ""


def choose() -> Choice:
    """The first provider this host can run a lab on now (VirtualBox if
    installed, else libvirt if its plugin and a daemon are here, else docker
    if an engine answers), passing over one that would emulate its guests
    when a later one runs them at full speed."""
    usable = (p for p in PROVIDERS.values() if p.usable())
    first = next(usable, None)
    if first is None:
        raise SpecError(
            "no usable Vagrant provider found (VirtualBox, libvirt or a Docker engine)",
            hint="run `labctl doctor` to see what is missing",
        )
    why = first.emulates()
    real = next((p for p in usable if not p.emulates()), None) if why else None
    if real is None:
        return Choice(first.name)
    return Choice(
        real.name,
        f"{first.name} would emulate here ({why}): using {real.name}; "
        f"--provider {first.name} for real VMs",
    )


def detect() -> str:
    """The provider a lab takes when nothing names one (`choose`)."""
    return choose().name


def boxes() -> list[BoxInfo]:
    """labctl's own boxes on this host, of every provider installed here."""
    return [box for p in PROVIDERS.values() if p.installed() for box in p.boxes()]


def require(name: str) -> None:
    """SpecError naming the package to install when `name` is not installed."""
    get(name).require()
