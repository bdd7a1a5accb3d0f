"""This host: its pre-flight checks, the versions of what labctl runs, and
labctl's own boxes."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from labctl import __version__, providers
from labctl.errors import TimedOut
from labctl.events import OnEvent
from labctl.lab import pkgcache
from labctl.lab.spec import DEFAULT_LIBVIRT_URI
from labctl.local import process
from labctl.ops import doctor
from labctl.ops.rows import row_of


def checks() -> list[doctor.Check]:
    """Vagrant, providers, Docker engine, box image, KVM; each with its fix."""
    return doctor.run_all()


def build_box(provider: str | None, force: bool, on_event: OnEvent) -> tuple[str, bool]:
    """(box, built): labctl's box for `provider` (default: this host's), and
    whether it was built now."""
    given = provider or os.environ.get("LABCTL_PROVIDER")
    return providers.get(given or providers.detect()).build_box(force, on_event)


@dataclass(frozen=True)
class BoxRow:
    """One of labctl's boxes, as `labctl box ls` shows it (and --json gives it)."""

    provider: str
    name: str
    version: str
    carries: list[str]  # the roles whose packages it holds
    packages: dict[str, str]  # package -> version
    built: str
    size: int  # bytes
    state: str  # current, stale (older role package lists) or unrecorded (no manifest)


def box_list() -> list[BoxRow]:
    """labctl's boxes on this host, each with what it carries and whether it is current."""
    return [
        row_of(
            BoxRow,
            box,
            carries=list(box.carries),
            packages=dict(box.manifest.packages) if box.manifest else {},
            built=box.manifest.built if box.manifest else "",
            state=box.state.value,
        )
        for box in providers.boxes()
    ]


# ---------------------------------------------------------------- versions

# A version answers at once; the limit only ends a hung engine or daemon, so
# `labctl version` stays quick on a host where one of them is stuck.
VERSION_TIMEOUT = 10.0
# Client, then engine, apart by a space (docker pads a tab into columns); the
# engine's part empty when it does not answer: the client's still prints
DOCKER_VERSION_FORMAT = "{{.Client.Version}} {{if .Server}}{{.Server.Version}}{{end}}"


@dataclass(frozen=True)
class Version:
    """One program labctl uses and its version; None: missing, `note` says why."""

    name: str
    version: str | None
    note: str = ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _why(done: process.Completed) -> str:
    """What a program that gave no version said instead (a tool's error is
    its last line of stderr: virsh puts the cause after the summary)."""
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return said[-1] if said else _first_line(done.stdout) or f"exit status {done.returncode}"


def _missing(names: Sequence[str], why: str) -> list[Version]:
    return [Version(name, None, why) for name in names]


def parse_vagrant_version(done: process.Completed) -> list[Version]:
    """`vagrant --version`: "Vagrant 2.3.4"."""
    found = re.search(r"Vagrant (\S+)", done.stdout)
    if done.returncode == 0 and found:
        return [Version("vagrant", found.group(1))]
    return _missing(["vagrant"], f"unreadable answer: {_why(done)}")


def parse_docker_version(done: process.Completed) -> list[Version]:
    """`docker version` with DOCKER_VERSION_FORMAT: the client's version, and
    the engine's when it answered (else why not, in docker's words)."""
    client, engine, *_ = [*_first_line(done.stdout).split(), "", ""]
    return [
        Version(
            "docker client", client or None, "" if client else f"unreadable answer: {_why(done)}"
        ),
        Version("docker engine", engine or None, "" if engine else f"not answering: {_why(done)}"),
    ]


def parse_virsh_version(done: process.Completed) -> list[Version]:
    """`virsh --version`: virsh's own (its libvirt library), no connection made."""
    version = _first_line(done.stdout)
    if done.returncode == 0 and re.fullmatch(r"\d+(\.\d+)+", version):
        return [Version("virsh", version)]
    return _missing(["virsh"], f"unreadable answer: {_why(done)}")


def parse_libvirt_version(done: process.Completed) -> list[Version]:
    """`virsh -c URI version --daemon`: the daemon's version and its
    hypervisor's ("Running hypervisor: QEMU 7.2.0")."""
    said = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in done.stdout.splitlines())
        if value.strip()
    )
    daemon = said.get("Running against daemon")
    if done.returncode != 0 or not daemon:
        return _missing(["libvirt daemon", "libvirt hypervisor"], f"not answering: {_why(done)}")
    kind, _, hypervisor = said.get("Running hypervisor", "").rpartition(" ")
    return [
        Version("libvirt daemon", daemon, DEFAULT_LIBVIRT_URI),
        Version("libvirt hypervisor", hypervisor or None, kind or "the daemon did not say"),
    ]


def parse_vboxmanage_version(done: process.Completed) -> list[Version]:
    """`VBoxManage --version`: "7.0.20r163906", after any warning of its own
    (a kernel module not loaded) on the lines before it."""
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 0 and lines and re.match(r"\d+\.\d+", lines[-1]):
        return [Version("VBoxManage", lines[-1])]
    return _missing(["VBoxManage"], f"unreadable answer: {_why(done)}")


@dataclass(frozen=True)
class _Query:
    """One program asked for the versions named in `gives`."""

    argv: tuple[str, ...]
    gives: tuple[str, ...]
    parse: Callable[[process.Completed], list[Version]]


VERSION_QUERIES = (
    _Query(("vagrant", "--version"), ("vagrant",), parse_vagrant_version),
    _Query(
        ("docker", "version", "--format", DOCKER_VERSION_FORMAT),
        ("docker client", "docker engine"),
        parse_docker_version,
    ),
    _Query(("virsh", "--version"), ("virsh",), parse_virsh_version),
    _Query(
        ("virsh", "-c", DEFAULT_LIBVIRT_URI, "version", "--daemon"),
        ("libvirt daemon", "libvirt hypervisor"),
        parse_libvirt_version,
    ),
    _Query(("VBoxManage", "--version"), ("VBoxManage",), parse_vboxmanage_version),
)


def _ask_version(query: _Query) -> list[Version]:
    if shutil.which(query.argv[0]) is None:
        return _missing(query.gives, f"{query.argv[0]} is not installed")
    try:
        done = process.run(query.argv, timeout=VERSION_TIMEOUT)
    except TimedOut:
        return _missing(query.gives, f"no answer within {VERSION_TIMEOUT:g} s")
    return query.parse(done)


def versions() -> list[Version]:
    """labctl's own version, then Vagrant's and every provider's on this host,
    each program asked at once with a short time limit (Vagrant alone takes a
    second to start); one that is missing or does not answer is a row saying
    so, never an error."""
    with ThreadPoolExecutor(len(VERSION_QUERIES)) as pool:
        answers = list(pool.map(_ask_version, VERSION_QUERIES))
    return [Version("labctl", __version__), *(version for rows in answers for version in rows)]


# ---------------------------------------------------------------- package cache


def cache_start() -> tuple[pkgcache.CacheState, bool]:
    """The host's package cache running; True when started now."""
    return pkgcache.PackageCache.locate().start()


def cache_stop() -> bool:
    """The host's package cache stopped; False when it was not running."""
    return pkgcache.PackageCache.locate().stop()


def cache_state() -> pkgcache.CacheState:
    return pkgcache.PackageCache.locate().state()
