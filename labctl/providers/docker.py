"""Vagrant's docker provider: containers with systemd as PID 1 acting as VMs
(DEVELOPERS.md, "The docker provider"), reached at their own addresses on
the docker bridge, so only from a Linux host. Its box is an image: Debian
made with debootstrap, then `docker import` (Vagrant's docker provider runs
an image, not a box file; with `has_ssh` it treats the container as a VM)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError, SpecError, TimedOut
from labctl.events import OnEvent, ignore, info
from labctl.lab.spec import LabSpec, Machine
from labctl.local import deadline, process
from labctl.providers import debootstrap, packages
from labctl.providers.base import (
    Check,
    EngineDown,
    LiveState,
    NoAnswer,
    Provider,
    Runner,
    ask_quietly,
    listed_names,
    machine_prefix,
    run_tool,
)
from labctl.transport.interface import Endpoint

# on every docker guest: the id of the lab it belongs to
LAB_ID_LABEL = "io.labctl.lab-id"
DOCKER_BOX = "labctl/debian:bookworm"
# docker's default bridge has its interface in this option; every other bridge
# network is `br-` and the first 12 characters of its id
DOCKER_BRIDGE_OPTION = "com.docker.network.bridge.name"
# $1: the root file system, $2: the image to make of it, then its --change options
IMPORT_PIPE = 'tar -C "$1" -c . | docker import --change \'CMD ["/sbin/init"]\' "${@:3}" - "$2"'


def image_present(image: str = DOCKER_BOX) -> bool:
    return process.run(["docker", "image", "inspect", image], timeout=60).returncode == 0


def inspect_image(image: str = DOCKER_BOX) -> dict[str, Any] | None:
    """`docker image inspect` of `image`; None when it is not here."""
    done = process.run(["docker", "image", "inspect", image], timeout=60)
    return parse_image(done) if done.returncode == 0 else None


def parse_image(done: process.Completed) -> dict[str, Any] | None:
    try:
        found = json.loads(done.stdout or "[]")
    except ValueError:
        return None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else None


def box_info(image: str, inspected: dict[str, Any]) -> packages.BoxInfo:
    """A labctl image as `box ls` shows it: its manifest is in its labels."""
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    manifest = packages.Manifest.from_labels(labels)
    return packages.BoxInfo(
        provider="docker",
        name=image,
        version=str(inspected.get("Id", "")).removeprefix("sha256:")[:12],
        size=int(inspected.get("Size") or 0),
        state=packages.freshness(manifest, packages.role_packages()),
        manifest=manifest,
    )


def label_changes(manifest: packages.Manifest) -> list[str]:
    """`docker import --change` options that label the image with its manifest
    (values without spaces or quotes: versions, names, digests)."""
    return [f'--change=LABEL {key}="{value}"' for key, value in manifest.labels().items()]


def build(image: str = DOCKER_BOX, force: bool = False, on_event: OnEvent = ignore) -> bool:
    """Build `image`; False when it is already here and current, unless forced."""
    inspected = None if force else inspect_image(image)
    if inspected and box_info(image, inspected).state is packages.Freshness.CURRENT:
        return False
    debootstrap.require_tools("debootstrap", "docker", "tar")
    keys = debootstrap.vagrant_public_keys()
    work = Path(tempfile.mkdtemp(prefix="labctl-box-", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        debootstrap.debootstrap(rootfs, debootstrap.PACKAGES, on_event)
        debootstrap.customize(rootfs, keys)
        manifest = debootstrap.carry_roles(rootfs, packages.role_packages(), on_event)
        on_event(info("", f"importing {rootfs} as docker image {image}"))
        # one child, under process.run's time limit and Ctrl-C: the pipe in bash
        argv = ["bash", "-o", "pipefail", "-c", IMPORT_PIPE, "box", str(rootfs), image]
        argv += label_changes(manifest)
        process.checked(process.run(argv, timeout=1800), "docker import")
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def installed() -> bool:
    return shutil.which("docker") is not None


def guests_reachable() -> bool:
    """labctl reaches docker guests at their own addresses on the docker
    bridge, which only a Linux host routes to (Docker Desktop keeps it in a VM)."""
    return sys.platform.startswith("linux")


def engine_answers(timeout: float = 10.0) -> bool:
    if not installed():
        return False
    try:
        done = process.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=timeout)
    except TimedOut:
        return False
    return done.returncode == 0


def containers(label: str) -> dict[str, str]:
    """Every container's name and its value of `label` ("" when unset)."""
    try:
        listed = process.run(
            ["docker", "ps", "-a", "--format", f'{{{{.Names}}}}\t{{{{.Label "{label}"}}}}'],
            timeout=60,
        )
    except TimedOut:
        raise LabctlError("the Docker engine did not list its containers within 60 s") from None
    if listed.returncode != 0:
        raise LabctlError(f"docker ps failed: {listed.stderr.strip() or listed.returncode}")
    rows = (line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line)
    return {name: value for name, value in rows}


def docker_args(spec: LabSpec, m: Machine) -> list[str]:
    """`docker create` flags that let systemd run as PID 1 without --privileged."""
    return [
        "--cap-add=SYS_ADMIN",
        "--cap-add=NET_ADMIN",
        "--security-opt=seccomp=unconfined",
        "--security-opt=apparmor=unconfined",
        "--cgroupns=host",
        "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs=/run",
        "--tmpfs=/run/lock",
        # containerd's overlay snapshotter cannot stack on the container's own
        # overlay root; an anonymous volume per machine is a plain directory
        # and `vagrant destroy` (docker rm -v) removes it with the container.
        "--volume=/var/lib/containerd",
        # systemd shuts down cleanly on SIGRTMIN+3, not on docker's SIGTERM.
        "--stop-signal=SIGRTMIN+3",
        f"--cpus={m.cpus}",
        f"--memory={m.memory}m",
        f"--label=io.labctl.lab={spec.name}",
        f"--label={LAB_ID_LABEL}={spec.id}",
    ]


# ---------------------------------------------------------------- states

# Vagrant's docker provider: a container `docker ps` lists is running (a
# paused or restarting one too), any other one is stopped.
_DOCKER_RUNNING = {"running", "paused", "restarting"}
_NOT_FOUND = re.compile(r"No such (container|object)", re.I)
_ENGINE_DOWN = re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running")


def docker_command(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *ids]


def parse_docker(done: process.Completed) -> dict[str, str]:
    """container id -> docker's status word, for the containers that exist.

    `docker inspect` prints the ones it found and fails for the others; any
    other complaint on stderr means the engine did not answer."""
    complaints = [
        line for line in done.stderr.splitlines() if line.strip() and not _NOT_FOUND.search(line)
    ]
    if done.returncode != 0 and complaints:
        if _ENGINE_DOWN.search(done.stderr):
            raise EngineDown(
                "the Docker engine is not answering",
                hint="start it (systemctl start docker, or dockerd &); its labs' machines "
                "stopped with it: labctl up LAB starts them again",
            )
        raise NoAnswer(f"docker: {complaints[0].strip()}")
    try:
        found = json.loads(done.stdout or "[]")
        return {c["Id"]: str(c["State"]["Status"]) for c in found}
    except (ValueError, KeyError, TypeError) as exc:
        raise NoAnswer(f"docker inspect gave an answer labctl cannot read: {exc}") from None


def docker_state(status: str) -> str:
    return "running" if status in _DOCKER_RUNNING else "stopped"


def ask_docker(ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    """id -> state (machine left blank) for every id; a missing one is not created."""
    if not ids:
        return {}
    statuses = parse_docker(run(docker_command(ids)))
    found = {}
    for ident in ids:  # Vagrant records the full ids docker answers with
        status = statuses.get(ident)
        if status is None:
            found[ident] = LiveState("", "not_created", "docker", "no such container")
        else:
            detail = "" if status == docker_state(status) else status
            found[ident] = LiveState("", docker_state(status), "docker", detail)
    return found


def ssh_endpoints(
    ids: dict[str, str], vagrant_dir: Path, run: Runner = run_tool
) -> dict[str, Endpoint] | None:
    """What Vagrant's docker provider answers to `ssh-config`, from one
    `docker inspect`: the container's address on docker's bridge, port 22,
    user vagrant, and the key Vagrant put in the machine's folder when it
    replaced its insecure one. None (ask Vagrant) for a machine without that
    key yet, or one not running with an address."""
    keys = {m: vagrant_dir / "machines" / m / "docker" / "private_key" for m in ids}
    if not ids or not all(key.is_file() for key in keys.values()):
        return None
    done = run(docker_command(list(ids.values())))
    try:
        # docker prints the containers it found, and fails for the others
        found = {c["Id"]: c for c in json.loads(done.stdout or "[]")}
        address = {
            ident: str(c["NetworkSettings"]["IPAddress"])
            for ident, c in found.items()
            if c["State"]["Status"] == "running"
        }
    except (ValueError, KeyError, TypeError):
        return None
    if not all(address.get(ident) for ident in ids.values()):
        return None
    return {
        m: Endpoint(name=m, host=address[ident], port=22, user="vagrant", key_file=str(keys[m]))
        for m, ident in ids.items()
    }


def parse_docker_networks(done: process.Completed) -> dict[str, str]:
    """`docker network inspect ID...` -> bridge interface -> network name."""
    try:
        return {
            (n.get("Options") or {}).get(DOCKER_BRIDGE_OPTION) or f"br-{n['Id'][:12]}": n["Name"]
            for n in json.loads(done.stdout or "[]")
            if n.get("Driver") == "bridge"
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


# ---------------------------------------------------------------- the provider


class Docker(Provider):
    name = "docker"
    install_hint = "install Docker (Debian/Ubuntu: apt-get install docker.io)"
    resources_fixed = True
    shares_host_kernel = True

    def installed(self) -> bool:
        return installed()

    def usable(self) -> bool:
        return guests_reachable() and engine_answers()

    def require(self) -> None:
        super().require()
        if not guests_reachable():
            raise SpecError(
                "the docker provider needs a Linux host: labctl connects to the containers' "
                "own addresses",
                hint="use virtualbox or libvirt on this host",
            )

    def checks(self) -> tuple[list[Check], list[Check]]:
        here = installed()
        engine = engine_answers() if here else False
        found = [
            Check(
                "provider docker",
                here,
                "docker CLI found" if here else "not installed",
                self.install_hint,
            )
            if guests_reachable()
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
        if not engine:
            return found, []
        present = image_present()
        image = DOCKER_BOX if present else "missing"
        fix = "labctl box build (needs root and debootstrap)"
        return found, [Check("docker box image", present, image, fix)]

    def default_box(self, libvirt_uri: str | None = None) -> str:
        return DOCKER_BOX

    def ready(
        self, spec: LabSpec, on_event: OnEvent, created: frozenset[str] = frozenset()
    ) -> None:
        if not engine_answers():
            raise LabctlError(
                "the Docker engine is not answering",
                hint="start it (systemctl start docker, or dockerd &) and try again",
            )
        to_make = {m.box for m in spec.machines if m.name not in created}
        for image in sorted({m.box for m in spec.machines}):
            inspected = inspect_image(image)
            if inspected:
                if image == DOCKER_BOX and image in to_make:
                    said = packages.notice(image, box_info(image, inspected).state)
                    if said:
                        on_event(info("", said))
                continue
            if image != DOCKER_BOX:
                raise LabctlError(
                    f"docker image {image!r} is not on this host",
                    hint="build or pull it, or leave out the box to use labctl's own",
                )
            on_event(info("", f"box image {DOCKER_BOX} is missing: building it (labctl box build)"))
            build(on_event=on_event)
        refuse_foreign_containers(spec)

    def states(self, key: str, ids: Sequence[str], run: Runner) -> dict[str, LiveState]:
        return ask_docker(ids, run)

    def endpoints(
        self, ids: dict[str, str], vagrant_dir: Path, run: Runner
    ) -> dict[str, Endpoint] | None:
        return ssh_endpoints(ids, vagrant_dir, run)

    def boxes(self) -> list[packages.BoxInfo]:
        inspected = inspect_image() if engine_answers() else None
        return [box_info(DOCKER_BOX, inspected)] if inspected else []

    def build_box(self, force: bool, on_event: OnEvent) -> tuple[str, bool]:
        return DOCKER_BOX, build(force=force, on_event=on_event)

    def vagrantfile(self, spec: LabSpec, accel: str) -> dict[str, Any]:
        return {"docker_args": lambda m: docker_args(spec, m)}

    def destroyed(self, spec: LabSpec) -> None:
        """Containers of this lab that Vagrant no longer knows (an `up` interrupted
        before Vagrant recorded them), and then their network if it is empty."""
        if not installed():
            return
        try:
            owners = containers(LAB_ID_LABEL)
        except LabctlError:
            return  # best effort: Vagrant has destroyed what it knew of
        found = [name for name, lab_id in owners.items() if lab_id == spec.id]
        if found:
            process.run(["docker", "rm", "-f", "-v", *found], timeout=deadline.default("teardown"))
            # Vagrant's network for the subnet; docker refuses while others use it.
            process.run(
                ["docker", "network", "rm", f"vagrant_network_{spec.subnet}.0/24"],
                timeout=deadline.default("quick"),
            )

    def network_of(self, interface: str) -> str | None:
        ids = listed_names(
            ask_quietly(["docker", "network", "ls", "-q", "--filter", "driver=bridge"])
        )
        inspected = ask_quietly(["docker", "network", "inspect", *ids]) if ids else None
        name = parse_docker_networks(inspected).get(interface) if inspected else None
        return f"docker network {name!r}" if name else None


def refuse_foreign_containers(spec: LabSpec) -> None:
    """Vagrant names each container after its lab and machine; another by that
    name (left by a lab whose folder was deleted) would stop `docker run`
    half-way through bringing the lab up."""
    owners = containers(LAB_ID_LABEL)
    names = [machine_prefix(spec) + m.name for m in spec.machines]
    foreign = [n for n in names if n in owners and owners[n] != spec.id]
    if foreign:
        many = len(foreign) > 1
        raise LabctlError(
            f"docker container{'s' if many else ''} {', '.join(foreign)} "
            f"already exist{'' if many else 's'} and {'are' if many else 'is'} not of lab "
            f"{spec.name!r}",
            hint=f"remove {'them' if many else 'it'} (docker rm -f -v {' '.join(foreign)}) "
            "or use --name for a new lab",
        )
