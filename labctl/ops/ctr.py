"""`labctl ctr`: containerd in the lab's guests, on many machines at once.

A ctr subcommand that one ctr command answers is a row of SUBCOMMANDS, under
ctr's own name: its argv builder and parser (guest.ctr) and what its success
says; `run` runs any of them, and cli/ctr.py makes each one's command from its
row (pyinfra's facts: a command and its parser together, one runner). Written
by hand below: what takes more than one ctr command, or more than ctr (images
pull and import, rm, service, shell, tasks exec).
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.errors import GuestError, SpecError, TimedOut
from labctl.guest import ctr

if TYPE_CHECKING:  # cli/ctr.py reads the table to make its commands, even for --help
    from labctl.lab.home import LabHome
    from labctl.session.group import Outcome
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
    from labctl.session.group import LabSession

    with LabSession(home, target.lab) as session:
        return session.each(session.select(target.machines, role="containerd"), fn)


def _on_each(
    home: LabHome,
    target: Target,
    argv: Sequence[str],
    parse: Callable[[str], Any] | None = None,
    explain: Callable[[Transport, Result], str | None] | None = None,
) -> list[Outcome[Any]]:
    """One ctr command on every targeted machine; ctr's output parsed or raw."""

    def one(t: Transport) -> Any:
        # A detached process (ctr -d) gets ctr's stdin: held open, as on a terminal, it
        # lives on (an end-of-file would end a shell). In the foreground, the
        # end-of-file lets a process that reads stdin finish.
        result = t.run(argv, sudo=True, timeout=target.timeout, hold_stdin=ctr.detaches(argv))
        why = explain(t, result) if explain and not result.ok else None
        if why:
            raise CtrFailed(f"{t.name}: {why}")
        out = _check(t.name, result).stdout
        return parse(out) if parse else out

    return each(home, target, one)


Explain = Callable[["Transport", "Result", Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Subcommand:
    """A ctr subcommand one ctr command answers. Its arguments are its argv
    builder's parameters, by name (after `ns` when ctr runs it in a namespace,
    which makes it take -n); cli/ctr.py declares each name once."""

    help: str
    argv: Callable[..., list[str]]
    parse: Callable[[str, str], Any] | None = None  # (ctr's output, the namespace asked)
    columns: tuple[str, ...] = ()  # a listing: its rows' columns, one table over every machine
    quiet: str = ""  # the column a listing's -q prints alone
    record: str = ""  # not a table: each machine's parsed record, as JSON under this key
    done: str = "ok"  # what a success says, formatted with the arguments
    echo: bool = False  # ctr's own output instead, when it printed any
    explain: Explain | None = None  # a failure ctr's own line says too little of

    @property
    def namespaced(self) -> bool:
        return next(iter(inspect.signature(self.argv).parameters), "") == "ns"

    @property
    def params(self) -> list[str]:
        return list(inspect.signature(self.argv).parameters)[self.namespaced :]

    def said(self, output: str, args: Mapping[str, Any]) -> str:
        return output if self.echo and output else self.done.format(**args)


def run(home: LabHome, target: Target, path: str, **args: Any) -> list[Outcome[Any]]:
    """Subcommand `path` of SUBCOMMANDS on every targeted machine; an argument
    given as None takes its builder's default."""
    sub = SUBCOMMANDS[path]
    given = {k: v for k, v in args.items() if v is not None}
    argv = sub.argv(target.namespace, **given) if sub.namespaced else sub.argv(**given)
    parse, explain = sub.parse, sub.explain
    return _on_each(
        home,
        target,
        argv,
        (lambda out: parse(out, target.namespace)) if parse else None,
        (lambda t, result: explain(t, result, args)) if explain else None,
    )


def _not_empty(t: Transport, result: Result, args: Mapping[str, Any]) -> str | None:
    """ctr says a namespace is not empty, not what is left in it."""
    if "must be empty" not in result.stderr:
        return None
    return f"namespace {args['name']!r} is not empty: {_contents(t, args['name'])}"


def _contents(t: Transport, ns: str) -> str:
    parts = []
    for label, argv, parse in (
        ("task", ctr.tasks_ls(ns), lambda o: [x.container for x in ctr.parse_tasks_ls(o, ns)]),
        (
            "container",
            ctr.containers_ls(ns),
            lambda o: [x["container"] for x in ctr.parse_containers_ls(o)],
        ),
        ("image", ctr.images_ls(ns), lambda o: [x["ref"] for x in ctr.parse_images_ls(o)]),
    ):
        names = parse(t.run(argv, sudo=True).stdout)
        if names:
            parts.append(
                f"{len(names)} {label}{'s' if len(names) > 1 else ''} ({', '.join(names)})"
            )
    return "; ".join(parts) or "snapshots or content only; remove them with ctr"


TASK_COLUMNS = ("namespace", "container", "pid", "status")

# In the order `--help` lists them (cli/ctr.py places the ones written by hand).
SUBCOMMANDS: dict[str, Subcommand] = {
    "ps": Subcommand(
        "Every task in every namespace of every selected machine, one table.",
        ctr.ps,
        lambda out, _: ctr.parse_ps(out),
        TASK_COLUMNS,
    ),
    "namespaces ls": Subcommand(
        "List namespaces.",
        ctr.namespaces_ls,
        lambda out, _: ctr.parse_namespaces_ls(out),
        ("namespace", "labels"),
    ),
    "namespaces create": Subcommand(
        "Create a namespace.", ctr.namespaces_create, done="namespace {name} created"
    ),
    "namespaces rm": Subcommand(
        "Remove an empty namespace (says what is left in one that is not).",
        ctr.namespaces_rm,
        done="namespace {name} removed",
        explain=_not_empty,
    ),
    "images ls": Subcommand(
        "List images.",
        ctr.images_ls,
        lambda out, _: ctr.parse_images_ls(out),
        ("ref", "digest", "size", "platforms"),
        quiet="ref",
    ),
    "images rm": Subcommand("Remove an image.", ctr.images_rm, done="removed {ref}"),
    "images mount": Subcommand(
        "Mount an image's files at DIR in the guest, to look without running it.",
        ctr.images_mount,
        echo=True,
    ),
    "images unmount": Subcommand(
        "Unmount what `images mount` mounted.", ctr.images_unmount, echo=True
    ),
    "containers ls": Subcommand(
        "List containers.",
        ctr.containers_ls,
        lambda out, _: ctr.parse_containers_ls(out),
        ("container", "image", "runtime"),
    ),
    "containers create": Subcommand(
        "Create a container from an image (options go before REF).",
        ctr.containers_create,
        done="container {cid} created",
    ),
    "containers info": Subcommand(
        "A container's full record (JSON, per machine).",
        ctr.containers_info,
        lambda out, _: ctr.parse_containers_info(out),
        record="info",
    ),
    "containers rm": Subcommand(
        "Remove a container (its task must be gone: see `labctl ctr rm`).",
        ctr.containers_rm,
        done="container {cid} removed",
    ),
    "tasks ls": Subcommand("List tasks.", ctr.tasks_ls, ctr.parse_tasks_ls, TASK_COLUMNS),
    "tasks start": Subcommand(
        "Start a container's task.", ctr.tasks_start, done="task {cid} started", echo=True
    ),
    "tasks ps": Subcommand(
        "Processes of a task: the init PID and every exec'd one.",
        ctr.tasks_ps,
        lambda out, _: ctr.parse_tasks_ps(out),
        ("pid", "exec_id"),
    ),
    "tasks kill": Subcommand("Signal a task.", ctr.tasks_kill, done="sent {signal} to {cid}"),
    "tasks rm": Subcommand("Delete a task.", ctr.tasks_rm, done="task {cid} deleted"),
    "run": Subcommand(
        "Create a container and start it detached, in one step.",
        ctr.run,
        done="{cid} running",
        echo=True,
    ),
}


# ---------------------------------------------------------------- by hand


def _exec_id(given: str | None) -> str:
    return given or f"labctl-{secrets.token_hex(3)}"


def images_pull(home: LabHome, target: Target, ref: str) -> tuple[str, list[Outcome[str]]]:
    """Pull `ref` (short names expanded the way docker does, and said so)."""
    full = ctr.expand_ref(ref)
    return full, _on_each(home, target, ctr.images_pull(target.namespace, full))


def images_import(
    home: LabHome, target: Target, path: Path, name: str | None
) -> list[Outcome[str]]:
    """Copy a local OCI/Docker archive into each guest over SFTP and import it."""
    if not path.is_file():
        raise SpecError(f"cannot read image archive {str(path)!r}: not a file")
    remote = f"/tmp/labctl-import-{secrets.token_hex(6)}.tar"

    def one(t: Transport) -> str:
        t.put(path, remote, mode=0o600)
        argv = ctr.images_import(target.namespace, remote, name)
        try:
            return _check(t.name, t.run(argv, sudo=True, timeout=target.timeout)).stdout
        finally:
            t.run(["rm", "-f", remote])

    return each(home, target, one)


def tasks_exec(
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
    return chosen, _on_each(home, target, argv)


def rm(home: LabHome, target: Target, cid: str, if_exists: bool = False) -> list[Outcome[str]]:
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
            x.container for x in ctr.parse_tasks_ls(t.run(ctr.tasks_ls(ns), sudo=True).stdout, ns)
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
