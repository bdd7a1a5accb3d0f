"""What every provider answers (`Provider`: each question, with the answer of
a provider that has nothing to add) and what the answers are made of
(DEVELOPERS.md, "Adding a provider")."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from labctl.errors import LabctlError, SpecError, TimedOut
from labctl.events import OnEvent
from labctl.lab.spec import LabSpec
from labctl.local import process
from labctl.providers.packages import BoxInfo
from labctl.transport.interface import Endpoint

Runner = Callable[[Sequence[str]], process.Completed]
ASK_TIMEOUT = 20.0
# Who holds a network is asked only once a subnet is refused, so the message
# names what to look at; a slow or absent answer leaves the interface's name.
HOLDER_TIMEOUT = 5.0
VM_BOX = "debian/bookworm64"  # Debian's own, from Vagrant Cloud
BOX_SERVER = "https://vagrantcloud.com"


@dataclass(frozen=True)
class Check:
    """One line of `labctl doctor`: what was looked at, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str
    required: bool = False


@dataclass(frozen=True)
class LiveState:
    """One machine as its provider sees it, in Vagrant's words."""

    machine: str
    state: str  # running, stopped, shutoff, poweroff, saved, paused, not_created, ...
    provider: str
    detail: str = ""  # the provider's own word when it says more ("exited")

    @property
    def running(self) -> bool:
        return self.state == "running"

    def describe(self) -> str:
        """`docker state: exited`: what a user can look up in the provider's terms."""
        return f"{self.provider} state: {self.detail or self.state.replace('_', ' ')}"


class NoAnswer(LabctlError):
    """The provider's tool did not answer (not installed, engine down)."""


class EngineDown(NoAnswer):
    """The provider's engine is not running: Vagrant cannot answer either.
    `detail`: the word for its machines' state meanwhile."""

    detail = "engine down"


def run_tool(argv: Sequence[str]) -> process.Completed:
    return process.run(argv, timeout=ASK_TIMEOUT)


def ask_quietly(argv: Sequence[str]) -> process.Completed | None:
    """argv's answer; None when the program is missing, fails or is slow."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = process.run(argv, timeout=HOLDER_TIMEOUT)
    except TimedOut:
        return None
    return done if done.returncode == 0 else None


def listed_names(done: process.Completed | None) -> list[str]:
    """One name a line (`docker network ls -q`, `virsh net-list --name`)."""
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done else []


def machine_prefix(spec: LabSpec) -> str:
    """Names of a lab's containers/domains/VMs: labctl-<lab>-<machine>."""
    return f"labctl-{spec.name}-"


class Provider:
    """A Vagrant provider as labctl uses it. Subclasses set the class
    attributes and override what their provider does otherwise."""

    name: ClassVar[str]
    install_hint: ClassVar[str]
    # plan: cpus, memory and forwarded ports are fixed when a machine is
    # created (a container's, at `docker create`): a change recreates it
    resources_fixed: ClassVar[bool] = False
    # link: the guests run on the host's own kernel (no netem of their own)
    shares_host_kernel: ClassVar[bool] = False
    # a lab-wide libvirt_uri: the daemon (this host's or another's) to ask
    connects_by_uri: ClassVar[bool] = False
    # a second /24 of the lab's own (libvirt's management network)
    own_management_network: ClassVar[bool] = False

    def installed(self) -> bool:
        raise NotImplementedError

    def usable(self) -> bool:
        """Whether `detect` may choose it: installed and able to run a lab now."""
        return self.installed()

    def require(self) -> None:
        """SpecError naming what to install when it is not installed."""
        if not self.installed():
            raise SpecError(f"provider {self.name} is not installed", hint=self.install_hint)

    def checks(self) -> tuple[list[Check], list[Check]]:
        """doctor's: whether it is here (its engine answering), and what it has
        ready (its box, how its guests run), listed after every provider's first."""
        raise NotImplementedError

    def default_box(self, libvirt_uri: str | None = None) -> str:
        return VM_BOX

    def accel(self, spec: LabSpec) -> str:
        """How this host runs the lab's guests, as render takes it ("kvm", "tcg")."""
        return "kvm"

    def emulates(self) -> str:
        """Why this host's guests of this provider would be emulated ("PVM"),
        "" when they run at full speed: the default provider passes over one
        that would where another does not."""
        return ""

    def boxes(self) -> list[BoxInfo]:
        """labctl's own boxes of this provider on this host (`labctl box ls`)."""
        return []

    def ready(
        self, spec: LabSpec, on_event: OnEvent, created: frozenset[str] = frozenset()
    ) -> None:
        """Before `up` starts anything: what the lab needs is here (the box of
        each machine to make), or made now, or one line says how to get it."""
        for name in sorted({m.box for m in spec.machines if m.name not in created}):
            check_vm_box(name, self.name)

    def state_key(self, spec: LabSpec) -> str:
        """Machines of labs with the same key are asked about in one call."""
        return ""

    def states(self, key: str, ids: Sequence[str], run: Runner) -> dict[str, LiveState]:
        """id -> state (machine left blank) of every id, from the provider's
        own tool in one batched call; NoAnswer when the tool does not answer."""
        raise NoAnswer(f"labctl cannot ask the provider {self.name} itself")

    def endpoints(
        self, ids: dict[str, str], vagrant_dir: Path, run: Runner
    ) -> dict[str, Endpoint] | None:
        """machine -> how Vagrant would reach it over SSH, for these machines
        (machine -> the provider's id), told by the provider's own tool as
        Vagrant's `ssh-config` would (it costs 2 s of Ruby); None: ask Vagrant."""
        return None

    def build_box(self, force: bool, on_event: OnEvent) -> tuple[str, bool]:
        """(box, built now): labctl's own box for this provider."""
        raise SpecError(
            f"labctl builds no box for {self.name}: its labs use {self.default_box()} "
            "from Vagrant Cloud",
            hint="--provider docker or libvirt",
        )

    def vagrantfile(self, spec: LabSpec, accel: str) -> dict[str, Any]:
        """The variables of its template partial beyond spec and prefix."""
        return {}

    def destroyed(self, spec: LabSpec) -> None:
        """After the whole lab was destroyed: remove what Vagrant left."""

    def network_of(self, interface: str) -> str | None:
        """The provider's own network behind a host interface, as its user
        knows it ("docker network 'bridge'"); None when none is."""
        return None


# ---------------------------------------------------------------- VM boxes


def vagrant_box_folder(name: str) -> Path:
    """Where Vagrant keeps a box's versions (boxes/OWNER-VAGRANTSLASH-NAME)."""
    home = Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")
    return home / "boxes" / name.replace("/", "-VAGRANTSLASH-")


def vagrant_box_present(name: str, provider: str) -> bool:
    """Whether `vagrant box add` has put a box of this name for this provider
    here (Vagrant's own layout: boxes/OWNER-VAGRANTSLASH-NAME/VERSION/PROVIDER)."""
    return any(p.is_dir() for p in vagrant_box_folder(name).glob(f"*/{provider}"))


def box_server_answers(timeout: float = 5.0) -> bool:
    """Whether the server Vagrant downloads boxes from (VAGRANT_SERVER_URL,
    else Vagrant Cloud) takes a connection."""
    url = urllib.parse.urlsplit(os.environ.get("VAGRANT_SERVER_URL") or BOX_SERVER)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def check_vm_box(name: str, provider: str) -> None:
    """Before a VM lab starts: its box is here, or can be downloaded; else
    one line saying how to get one (not minutes later, in Vagrant's words)."""
    if "://" in name or name.startswith(("/", ".")) or vagrant_box_present(name, provider):
        return
    if box_server_answers():
        return
    server = os.environ.get("VAGRANT_SERVER_URL") or BOX_SERVER
    raise LabctlError(
        f"box {name!r} for {provider} is not on this host and {server} cannot be reached",
        hint=f"add it from a file (vagrant box add {name} BOX_FILE --provider {provider}), "
        "or pass --box with one that is here (vagrant box list)",
    )
