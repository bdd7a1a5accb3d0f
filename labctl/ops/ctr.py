"""`labctl ctr`: containerd in the lab's guests, on many machines at once."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import GuestError, SpecError
from labctl.guest import ctr
from labctl.home import LabHome
from labctl.session import LabSession, Outcome
from labctl.transport.interface import Result, Transport


@dataclass(frozen=True)
class Target:
    """Which lab, which machines (empty: every running one), which namespace."""

    lab: str | None = None
    machines: tuple[str, ...] = ()
    namespace: str = ctr.DEFAULT_NAMESPACE
    timeout: float | None = None


class CtrFailed(GuestError):
    """ctr failed on a machine; the message is ctr's own, with the machine's name."""


def _check(vm: str, result: Result) -> Result:
    if result.timed_out:
        from labctl.errors import TimedOut

        raise TimedOut(f"{vm}: ctr did not finish in time (channel closed)")
    if not result.ok:
        text = (
            ctr.error_text(result.stderr)
            or ctr.error_text(result.stdout)
            or f"exit status {result.exit_code}"
        )
        raise CtrFailed(f"{vm}: {text}")
    return result


def each(home: LabHome, target: Target, fn: Callable[[Transport], Any]) -> list[Outcome[Any]]:
    """fn(transport) on every targeted machine (default: the running ones
    with the containerd role), in parallel."""
    with LabSession(home, target.lab) as session:
        return session.each(session.select(target.machines, role="containerd"), fn)


def _run_ctr(
    home: LabHome,
    target: Target,
    argv: Sequence[str],
    parse: Callable[[str], Any] | None = None,
    detached: bool = False,
) -> list[Outcome[Any]]:
    """One ctr command on every targeted machine; ctr's output parsed or raw."""

    def one(t: Transport) -> Any:
        # A detached process gets ctr's stdin: held open, as on a terminal, it
        # lives on (an end-of-file would end a shell). In the foreground, the
        # end-of-file lets a process that reads stdin finish.
        result = _check(t.name, t.run(argv, sudo=True, timeout=target.timeout, hold_stdin=detached))
        return parse(result.stdout) if parse else result.stdout

    return each(home, target, one)


# ---------------------------------------------------------------- listings


def ps(home: LabHome, target: Target) -> list[Outcome[list[ctr.Task]]]:
    """Every task in every namespace of every targeted machine."""
    return _run_ctr(home, target, ctr.ps_all(), ctr.parse_ps_all)


def namespaces(home: LabHome, target: Target) -> list[Outcome[list[dict[str, str]]]]:
    return _run_ctr(home, target, ctr.ns_ls(), ctr.parse_namespaces)


def images(home: LabHome, target: Target) -> list[Outcome[list[dict[str, str]]]]:
    return _run_ctr(home, target, ctr.images_ls(target.namespace), ctr.parse_images)


def containers(home: LabHome, target: Target) -> list[Outcome[list[dict[str, str]]]]:
    return _run_ctr(home, target, ctr.containers_ls(target.namespace), ctr.parse_containers)


def tasks(home: LabHome, target: Target) -> list[Outcome[list[ctr.Task]]]:
    return _run_ctr(
        home,
        target,
        ctr.tasks_ls(target.namespace),
        lambda out: ctr.parse_tasks(out, target.namespace),
    )


def task_ps(home: LabHome, target: Target, cid: str) -> list[Outcome[list[ctr.Process]]]:
    return _run_ctr(home, target, ctr.tasks_ps(target.namespace, cid), ctr.parse_task_ps)


def info(home: LabHome, target: Target, cid: str) -> list[Outcome[dict[str, object]]]:
    return _run_ctr(home, target, ctr.containers_info(target.namespace, cid), ctr.parse_info)


# ---------------------------------------------------------------- actions


def ns_create(home: LabHome, target: Target, name: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.ns_create(name))


def images_rm(home: LabHome, target: Target, ref: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.images_rm(target.namespace, ref))


def images_mount(home: LabHome, target: Target, ref: str, directory: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.images_mount(target.namespace, ref, directory))


def images_unmount(home: LabHome, target: Target, directory: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.images_unmount(target.namespace, directory))


def create(
    home: LabHome, target: Target, ref: str, cid: str, command: Sequence[str]
) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.containers_create(target.namespace, ref, cid, command))


def remove_container(home: LabHome, target: Target, cid: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.containers_rm(target.namespace, cid))


def start(home: LabHome, target: Target, cid: str, detach: bool) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.tasks_start(target.namespace, cid, detach), detached=detach)


def kill(home: LabHome, target: Target, cid: str, signal: str) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.tasks_kill(target.namespace, cid, signal))


def remove_task(home: LabHome, target: Target, cid: str, force: bool) -> list[Outcome[str]]:
    return _run_ctr(home, target, ctr.tasks_rm(target.namespace, cid, force))


def run(
    home: LabHome, target: Target, ref: str, cid: str, command: Sequence[str], rm: bool
) -> list[Outcome[str]]:
    """create + start -d in one step (ctr run); with rm, in the foreground, removed after."""
    return _run_ctr(home, target, ctr.run(target.namespace, ref, cid, command, rm), detached=not rm)


def _exec_id(given: str | None) -> str:
    return given or f"labctl-{secrets.token_hex(3)}"


def ns_remove(home: LabHome, target: Target, name: str) -> list[Outcome[str]]:
    """Remove a namespace; when it is not empty, say what is left in it."""

    def one(t: Transport) -> str:
        result = t.run(ctr.ns_rm(name), sudo=True, timeout=target.timeout)
        if result.ok:
            return result.stdout
        if "must be empty" in result.stderr:
            raise CtrFailed(f"{t.name}: namespace {name!r} is not empty: {_contents(t, name)}")
        return str(_check(t.name, result).stdout)

    return each(home, target, one)


def _contents(t: Transport, ns: str) -> str:
    parts = []
    for label, argv, parse in (
        ("task", ctr.tasks_ls(ns), lambda o: [x.container for x in ctr.parse_tasks(o, ns)]),
        (
            "container",
            ctr.containers_ls(ns),
            lambda o: [x["container"] for x in ctr.parse_containers(o)],
        ),
        ("image", ctr.images_ls(ns), lambda o: [x["ref"] for x in ctr.parse_images(o)]),
    ):
        names = parse(t.run(argv, sudo=True).stdout)
        if names:
            parts.append(
                f"{len(names)} {label}{'s' if len(names) > 1 else ''} ({', '.join(names)})"
            )
    return "; ".join(parts) or "snapshots or content only; remove them with ctr"


def pull(home: LabHome, target: Target, ref: str) -> tuple[str, list[Outcome[str]]]:
    """Pull `ref` (short names expanded the way docker does, and said so)."""
    full = ctr.expand_ref(ref)
    return full, _run_ctr(home, target, ctr.images_pull(target.namespace, full))


def import_image(home: LabHome, target: Target, path: Path, name: str | None) -> list[Outcome[str]]:
    """Copy a local OCI/Docker archive into each guest over SFTP and import it."""
    if not path.is_file():
        raise SpecError(f"cannot read image archive {str(path)!r}: not a file")
    remote = f"/tmp/labctl-import-{secrets.token_hex(6)}.tar"

    def one(t: Transport) -> str:
        t.put(path, remote, mode=0o600)
        try:
            return str(
                _check(
                    t.name,
                    t.run(
                        ctr.images_import(target.namespace, remote, name),
                        sudo=True,
                        timeout=target.timeout,
                    ),
                ).stdout
            )
        finally:
            t.run(["rm", "-f", remote])

    return each(home, target, one)


def exec_in_task(
    home: LabHome,
    target: Target,
    cid: str,
    command: Sequence[str],
    exec_id: str | None,
    detach: bool,
) -> tuple[str, list[Outcome[str]]]:
    """`t exec`: ctr requires an exec id; one is made up when not given."""
    chosen = _exec_id(exec_id)
    argv = ctr.tasks_exec(target.namespace, cid, chosen, command, detach=detach)
    return chosen, _run_ctr(home, target, argv, detached=detach)


def remove(home: LabHome, target: Target, cid: str, if_exists: bool = False) -> list[Outcome[str]]:
    """Kill the task if there is one, then remove task and container (and the
    systemd unit `ctr service` made for it, which would restart it): "removed";
    with `if_exists`, a container that is not there is "absent", not a failure."""
    ns = target.namespace
    unit = ctr.unit_name(ns, cid) if ctr.can_have_unit(ns, cid) else None

    def one(t: Transport) -> str:
        if unit and t.run(["test", "-e", f"{ctr.UNIT_DIR}/{unit}"]).ok:
            _check(t.name, t.run(["systemctl", "disable", "--now", unit], sudo=True))
            _check(t.name, t.run(["rm", "-f", f"{ctr.UNIT_DIR}/{unit}"], sudo=True))
            _check(t.name, t.run(["systemctl", "daemon-reload"], sudo=True))
        running = {
            x.container for x in ctr.parse_tasks(t.run(ctr.tasks_ls(ns), sudo=True).stdout, ns)
        }
        if cid in running:
            t.run(ctr.tasks_kill(ns, cid, "SIGKILL"), sudo=True)
            _check(t.name, t.run(ctr.tasks_rm(ns, cid, force=True), sudo=True))
        removed = t.run(ctr.containers_rm(ns, cid), sudo=True)
        if if_exists and not removed.ok and ctr.not_found(removed.stderr):
            return "absent"
        _check(t.name, removed)
        return "removed"

    return each(home, target, one)


def service(home: LabHome, target: Target, cid: str) -> list[Outcome[str]]:
    """A systemd unit that runs container `cid` and restarts it on failure."""
    if not ctr.can_have_unit(target.namespace, cid):
        raise SpecError(f"invalid container id or namespace: {cid!r} / {target.namespace!r}")
    unit = ctr.unit_name(target.namespace, cid)

    def one(t: Transport) -> str:
        _check(t.name, t.run(ctr.containers_info(target.namespace, cid), sudo=True))
        t.put(
            ctr.service_unit(target.namespace, cid).encode(),
            f"{ctr.UNIT_DIR}/{unit}",
            mode=0o644,
            sudo=True,
        )
        _check(t.name, t.run(["systemctl", "daemon-reload"], sudo=True))
        _check(t.name, t.run(["systemctl", "enable", unit], sudo=True))
        _check(t.name, t.run(["systemctl", "restart", unit], sudo=True))
        return unit

    return each(home, target, one)


def shell(
    home: LabHome, target: Target, cid: str, command: Sequence[str], exec_id: str | None
) -> int:
    """An interactive `t exec -t` in one machine (a PTY over SSH)."""
    from labctl.ops.guestcmd import terminal

    argv = ctr.tasks_exec(target.namespace, cid, _exec_id(exec_id), command or ["sh"], tty=True)
    return terminal(home, target.lab, target.machines, argv, sudo=True)
