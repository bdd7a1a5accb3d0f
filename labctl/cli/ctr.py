"""`labctl ctr ...` (containerd in the guests) and `labctl exec`."""

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labctl.cli.common import (
    JsonOpt,
    LabOpt,
    TimeoutOpt,
    complete_machine,
    error_rows,
    home,
    machines_chosen,
    report,
)
from labctl.errors import ExitCode

if TYPE_CHECKING:
    from labctl.ops.ctr import Target

VmOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--vm",
        help="A machine (repeat for more; default: every running one; ctr: with the containerd role).",
        autocompletion=complete_machine,
    ),
]
AllOpt = Annotated[
    bool, typer.Option("--all", help="Every running machine of the role (the default).")
]
NsOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="containerd namespace (default: default).")
]
IdArg = Annotated[str, typer.Argument(help="Container ID.")]
RefArg = Annotated[
    str, typer.Argument(help="Image reference, e.g. docker.io/library/alpine:latest.")
]
DirArg = Annotated[str, typer.Argument(metavar="DIR", help="A directory in the guest.")]
CmdArgs = Annotated[list[str] | None, typer.Argument(help="Command and its arguments.")]
TRAILING = {"allow_interspersed_args": False}  # everything after ID belongs to CMD

ctr_app = typer.Typer(
    help="containerd in the lab's machines, over SSH, on every machine at once.",
    no_args_is_help=True,
)
ns_app = typer.Typer(help="Namespaces.", no_args_is_help=True)
images_app = typer.Typer(help="Images.", no_args_is_help=True)
c_app = typer.Typer(help="Containers.", no_args_is_help=True)
t_app = typer.Typer(help="Tasks (a container's running processes).", no_args_is_help=True)


@ctr_app.callback()
def _ctr_root(
    ctx: typer.Context,
    lab: LabOpt = None,
    vm: VmOpt = None,
    all_: AllOpt = False,
    namespace: NsOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    chosen = machines_chosen(vm, all_)
    ctx.obj = {"lab": lab, "vm": chosen, "namespace": namespace, "timeout": timeout}


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line. Its source is an
    enum of click's, which typer up to 0.25 takes from click and from 0.26 from
    its own copy of click (typer._click): labctl depends on typer only, so it
    goes by the member's name, the same in both."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _target(
    ctx: typer.Context,
    vm: Sequence[str] | None = None,
    namespace: str | None = None,
    lab: str | None = None,
) -> "Target":
    from dataclasses import replace

    from labctl.ops.ctr import Target

    # ctx.obj is the ctr group's (inherited); options given on the subcommand
    # win, but LABCTL_LAB never beats the group's own --lab
    base = ctx.obj if isinstance(ctx.obj, dict) and "vm" in ctx.obj else {}
    if not _on_command_line(ctx, "lab"):
        lab = base.get("lab") if base.get("lab") is not None else lab
    target = Target(
        lab=lab,
        machines=tuple(vm or base.get("vm") or ()),
        timeout=base.get("timeout"),
    )
    chosen_ns = namespace or base.get("namespace")
    return replace(target, namespace=chosen_ns) if chosen_ns else target


def on_machines(namespace: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A ctr command that also takes --vm, --lab (and -n) after its own name:
    declared once here, they reach the command as one `target`."""
    extra = [("vm", VmOpt), ("lab", LabOpt), *([("namespace", NsOpt)] if namespace else [])]

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def command(**given: Any) -> None:
            chosen = {name: given.pop(name, None) for name, _ in extra}
            target = _target(given["ctx"], chosen["vm"], chosen.get("namespace"), chosen["lab"])
            fn(**given, target=target)

        own = [p for p in inspect.signature(fn).parameters.values() if p.name != "target"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
            for name, hint in extra
        ]
        command.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {
            **{k: v for k, v in fn.__annotations__.items() if k != "target"},
            **dict(extra),
        }
        return command

    return wrap


def _listing(
    outcomes: Sequence[Any],
    columns: Sequence[str],
    row: Callable[[Any], dict[str, Any]],
    json: bool,
) -> None:
    """One table (or JSON list) over every machine: each row has a `vm` key."""
    from labctl import ui

    rows = [{"vm": o.vm, **row(item)} for o in outcomes if o.ok for item in o.value]
    if json:
        ui.print_json([*rows, *error_rows(outcomes)])
    else:
        ui.table(
            ["VM", *(c.upper() for c in columns)],
            [[r["vm"], *(r.get(c, "") for c in columns)] for r in rows],
        )
    report(outcomes)


def _done(outcomes: Sequence[Any], say: Callable[[Any], str] | None = None) -> None:
    from labctl import ui

    for o in outcomes:
        if o.ok:
            text = say(o.value) if say else (o.value or "ok")
            for line in str(text).strip().splitlines() or ["ok"]:
                ui.line(f"{o.vm}: {line}")
    report(outcomes)


# ---------------------------------------------------------------- ps


@ctr_app.command("ps")
@on_machines(namespace=False)
def ps(ctx: typer.Context, target: "Target", json: JsonOpt = False) -> None:
    """Every task in every namespace of every selected machine, one table."""
    from dataclasses import asdict

    from labctl.ops import ctr as ops

    outcomes = ops.ps(home(ctx), target)
    _listing(outcomes, ["namespace", "container", "pid", "status"], asdict, json)


# ---------------------------------------------------------------- namespaces


@ns_app.command("ls")
@on_machines(namespace=False)
def ns_ls(ctx: typer.Context, target: "Target", json: JsonOpt = False) -> None:
    """List namespaces."""
    from labctl.ops import ctr as ops

    _listing(
        ops.namespaces(home(ctx), target),
        ["namespace", "labels"],
        dict,
        json,
    )


@ns_app.command("create")
@on_machines(namespace=False)
def ns_create(ctx: typer.Context, target: "Target", name: str) -> None:
    """Create a namespace."""
    from labctl.ops import ctr as ops

    _done(
        ops.ns_create(home(ctx), target, name),
        lambda _: f"namespace {name} created",
    )


@ns_app.command("rm")
@on_machines(namespace=False)
def ns_rm(ctx: typer.Context, target: "Target", name: str) -> None:
    """Remove an empty namespace (says what is left in one that is not)."""
    from labctl.ops import ctr as ops

    _done(
        ops.ns_remove(home(ctx), target, name),
        lambda _: f"namespace {name} removed",
    )


# ---------------------------------------------------------------- images


@images_app.command("ls")
@on_machines()
def images_ls(
    ctx: typer.Context,
    target: "Target",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="References only.")] = False,
    json: JsonOpt = False,
) -> None:
    """List images."""
    from labctl.ops import ctr as ops

    outcomes = ops.images(home(ctx), target)
    if quiet and not json:
        from labctl import ui

        for o in outcomes:
            for img in o.value or []:
                ui.line(f"{o.vm}: {img['ref']}")
        report(outcomes)
        return
    _listing(outcomes, ["ref", "digest", "size", "platforms"], dict, json)


@images_app.command("pull")
@on_machines()
def images_pull(ctx: typer.Context, target: "Target", ref: RefArg) -> None:
    """Pull an image (needs a registry the guests reach)."""
    from labctl import ui
    from labctl.ops import ctr as ops

    full, outcomes = ops.pull(home(ctx), target, ref)
    if full != ref:
        ui.info(f"ctr needs a full reference: pulling {full}")
    _done(outcomes, lambda _: f"pulled {full}")


@images_app.command("import")
@on_machines()
def images_import(
    ctx: typer.Context,
    target: "Target",
    file: Annotated[Path, typer.Argument(help="OCI or Docker image archive on this host.")],
    name: Annotated[str | None, typer.Option("--name", help="Name the imported image.")] = None,
) -> None:
    """Copy an image archive into the machines and import it (offline labs)."""
    from labctl.ops import ctr as ops

    _done(ops.import_image(home(ctx), target, file, name))


@images_app.command("rm")
@on_machines()
def images_rm(ctx: typer.Context, target: "Target", ref: RefArg) -> None:
    """Remove an image."""
    from labctl.ops import ctr as ops

    _done(ops.images_rm(home(ctx), target, ref), lambda _: f"removed {ref}")


@images_app.command("mount")
@on_machines()
def images_mount(ctx: typer.Context, target: "Target", ref: RefArg, directory: DirArg) -> None:
    """Mount an image's files at DIR in the guest, to look without running it."""
    from labctl.ops import ctr as ops

    _done(ops.images_mount(home(ctx), target, ref, directory))


@images_app.command("unmount")
@on_machines()
def images_unmount(ctx: typer.Context, target: "Target", directory: DirArg) -> None:
    """Unmount what `images mount` mounted."""
    from labctl.ops import ctr as ops

    _done(ops.images_unmount(home(ctx), target, directory))


# ---------------------------------------------------------------- containers


@c_app.command("ls")
@on_machines()
def c_ls(
    ctx: typer.Context,
    target: "Target",
    json: JsonOpt = False,
) -> None:
    """List containers."""
    from labctl.ops import ctr as ops

    _listing(
        ops.containers(home(ctx), target),
        ["container", "image", "runtime"],
        dict,
        json,
    )


@c_app.command("create", context_settings=TRAILING)
@on_machines()
def c_create(
    ctx: typer.Context,
    target: "Target",
    ref: RefArg,
    cid: IdArg,
    command: CmdArgs = None,
) -> None:
    """Create a container from an image (options go before REF)."""
    from labctl.ops import ctr as ops

    _done(
        ops.create(home(ctx), target, ref, cid, command or []),
        lambda _: f"container {cid} created",
    )


@c_app.command("info")
@on_machines()
def c_info(ctx: typer.Context, target: "Target", cid: IdArg) -> None:
    """A container's full record (JSON, per machine)."""
    from labctl import ui
    from labctl.ops import ctr as ops

    outcomes = ops.info(home(ctx), target, cid)
    ui.print_json([{"vm": o.vm, "info": o.value} for o in outcomes if o.ok])
    report(outcomes)


@c_app.command("rm")
@on_machines()
def c_rm(ctx: typer.Context, target: "Target", cid: IdArg) -> None:
    """Remove a container (its task must be gone: see `labctl ctr rm`)."""
    from labctl.ops import ctr as ops

    _done(
        ops.remove_container(home(ctx), target, cid),
        lambda _: f"container {cid} removed",
    )


# ---------------------------------------------------------------- tasks


@t_app.command("ls")
@on_machines()
def t_ls(
    ctx: typer.Context,
    target: "Target",
    json: JsonOpt = False,
) -> None:
    """List tasks."""
    from dataclasses import asdict

    from labctl.ops import ctr as ops

    _listing(
        ops.tasks(home(ctx), target),
        ["namespace", "container", "pid", "status"],
        asdict,
        json,
    )


@t_app.command("start")
@on_machines()
def t_start(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Do not wait for the task.")
    ] = False,
) -> None:
    """Start a container's task."""
    from labctl.ops import ctr as ops

    _done(
        ops.start(home(ctx), target, cid, detach),
        lambda out: out or f"task {cid} started",
    )


@t_app.command("exec", context_settings=TRAILING)
@on_machines()
def t_exec(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    command: CmdArgs = None,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Do not wait for the process.")
    ] = False,
    tty: Annotated[
        bool, typer.Option("-t", "--tty", help="Interactive terminal (one machine).")
    ] = False,
    exec_id: Annotated[
        str | None, typer.Option("--exec-id", help="Process name (default: made up).")
    ] = None,
) -> None:
    """Run another process in a running task (options go before ID)."""
    from labctl import ui
    from labctl.ops import ctr as ops

    if tty:
        raise typer.Exit(ops.shell(home(ctx), target, cid, command or ["sh"], exec_id))
    if not command:
        from labctl.errors import SpecError

        raise SpecError("t exec needs a command after the container ID")
    chosen, outcomes = ops.exec_in_task(home(ctx), target, cid, command, exec_id, detach)
    if not exec_id:
        ui.info(f"exec id: {chosen}")
    _done(outcomes, lambda out: out or f"{chosen} started in {cid}")


@t_app.command("ps")
@on_machines()
def t_ps(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    json: JsonOpt = False,
) -> None:
    """Processes of a task: the init PID and every exec'd one."""
    from dataclasses import asdict

    from labctl.ops import ctr as ops

    _listing(
        ops.task_ps(home(ctx), target, cid),
        ["pid", "exec_id"],
        asdict,
        json,
    )


@t_app.command("kill")
@on_machines()
def t_kill(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    signal: Annotated[
        str, typer.Option("-s", "--signal", help="Signal name or number.")
    ] = "SIGTERM",
) -> None:
    """Signal a task."""
    from labctl.ops import ctr as ops

    _done(
        ops.kill(home(ctx), target, cid, signal),
        lambda _: f"sent {signal} to {cid}",
    )


@t_app.command("rm")
@on_machines()
def t_rm(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    force: Annotated[bool, typer.Option("-f", "--force", help="Even if it is running.")] = False,
) -> None:
    """Delete a task."""
    from labctl.ops import ctr as ops

    _done(
        ops.remove_task(home(ctx), target, cid, force),
        lambda _: f"task {cid} deleted",
    )


# ---------------------------------------------------------------- shortcuts


@ctr_app.command("run", context_settings=TRAILING)
@on_machines()
def run(
    ctx: typer.Context,
    target: "Target",
    ref: RefArg,
    cid: IdArg,
    command: CmdArgs = None,
    rm: Annotated[
        bool, typer.Option("--rm", help="Run in the foreground, remove when it exits.")
    ] = False,
) -> None:
    """Create a container and start it detached, in one step."""
    from labctl.ops import ctr as ops

    _done(
        ops.run(home(ctx), target, ref, cid, command or [], rm),
        lambda out: out or f"{cid} running",
    )


@ctr_app.command("rm")
@on_machines()
def rm(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="A container that is not there is no error.")
    ] = False,
) -> None:
    """Kill the container's task if any, then remove task and container."""
    from labctl.ops import ctr as ops

    _done(
        ops.remove(home(ctx), target, cid, if_exists),
        lambda done: f"{cid} removed" if done == "removed" else f"{cid} was not there",
    )


@ctr_app.command("service")
@on_machines()
def service(ctx: typer.Context, target: "Target", cid: IdArg) -> None:
    """Run a container under systemd, restarted when it dies (ctr has no restart policy)."""
    from labctl.ops import ctr as ops

    _done(
        ops.service(home(ctx), target, cid),
        lambda unit: f"{unit} enabled and running",
    )


@ctr_app.command("shell", context_settings=TRAILING)
@on_machines()
def shell(
    ctx: typer.Context,
    target: "Target",
    cid: IdArg,
    command: CmdArgs = None,
    exec_id: Annotated[str | None, typer.Option("--exec-id", help="Process name.")] = None,
) -> None:
    """An interactive shell inside a running container (one machine)."""
    from labctl.ops import ctr as ops

    raise typer.Exit(ops.shell(home(ctx), target, cid, command or ["sh"], exec_id))


# ---------------------------------------------------------------- exec


def exec_(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="Command and arguments (after --).")],
    lab: LabOpt = None,
    vm: VmOpt = None,
    all_: AllOpt = False,
    sudo: Annotated[bool, typer.Option("--sudo", help="As root.")] = False,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Any command on many machines at once: labctl exec -- uname -r"""
    from labctl import ui
    from labctl.ops.guestcmd import exec_many

    chosen = machines_chosen(vm, all_)
    outcomes = exec_many(home(ctx), lab, chosen, command, sudo=sudo, timeout=timeout)
    rows = [o.value for o in outcomes if o.value is not None]
    if json:
        ui.print_json([*rows, *error_rows(outcomes)])
    else:  # like pdsh: every line prefixed by its machine
        for r in rows:
            for text in r.stdout.splitlines():
                ui.line(f"{r.vm}: {text}")
            for text in r.stderr.splitlines():
                ui.info(f"{r.vm}: {text}")
            if r.rc:
                ui.info(f"{r.vm}: exit status {r.rc}" + (" (timed out)" if r.timed_out else ""))
    report(outcomes)
    if any(r.timed_out for r in rows):
        raise typer.Exit(ExitCode.TIMEOUT)
    if any(r.rc != 0 for r in rows):
        raise typer.Exit(ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    ctr_app.add_typer(ns_app, name="ns")
    ctr_app.add_typer(ns_app, name="namespaces", hidden=True)
    ctr_app.add_typer(images_app, name="images")
    ctr_app.add_typer(images_app, name="i", hidden=True)
    ctr_app.add_typer(c_app, name="c")
    ctr_app.add_typer(c_app, name="containers", hidden=True)
    ctr_app.add_typer(t_app, name="t")
    ctr_app.add_typer(t_app, name="tasks", hidden=True)
    app.add_typer(ctr_app, name="ctr")
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_)
