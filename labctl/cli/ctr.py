"""`labctl ctr ...` (containerd in the guests) and `labctl exec`: a command
for each row of ops.ctr's table of subcommands, made by `_serve`, and the few
written by hand."""

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.common import (
    Command,
    JsonOpt,
    LabOpt,
    TimeoutOpt,
    complete_machine,
    error_rows,
    home,
    listing,
    machines_chosen,
    options_for,
    report,
)
from labctl.errors import ExitCode
from labctl.ops import ctr as ops
from labctl.ui import console as ui

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
    lab: str | None = None,
    namespace: str | None = None,
) -> ops.Target:
    from dataclasses import replace

    # ctx.obj is the ctr group's (inherited); options given on the subcommand
    # win, but LABCTL_LAB never beats the group's own --lab
    base = ctx.obj if isinstance(ctx.obj, dict) and "vm" in ctx.obj else {}
    if not _on_command_line(ctx, "lab"):
        lab = base.get("lab") if base.get("lab") is not None else lab
    target = ops.Target(
        lab=lab, machines=tuple(vm or base.get("vm") or ()), timeout=base.get("timeout")
    )
    chosen_ns = namespace or base.get("namespace")
    return replace(target, namespace=chosen_ns) if chosen_ns else target


def on_machines(namespace: bool = True) -> Callable[[Command], Command]:
    """A ctr command that also takes --vm, --lab (and -n) after its own name:
    declared once here, they reach the command as one `target`."""
    extra = [("vm", VmOpt), ("lab", LabOpt), *([("namespace", NsOpt)] if namespace else [])]
    return options_for("target", extra, _target, last=True)


def _listing(outcomes: Sequence[Any], columns: Sequence[str], json: bool, only: str = "") -> None:
    """One table (or JSON list) over every machine: each row has a `vm` key;
    with `only`, that column alone, a line per row."""
    rows = [{"vm": o.vm, **ui.to_plain(item)} for o in outcomes if o.ok for item in o.value]
    if only and not json:
        for r in rows:
            ui.line(f"{r['vm']}: {r[only]}")
        report(outcomes)
    else:
        listing(outcomes, ", ".join(c.upper() for c in ["vm", *columns]), json, rows)


def _done(outcomes: Sequence[Any], say: Callable[[Any], str] | None = None) -> None:
    for o in outcomes:
        if o.ok:
            text = say(o.value) if say else (o.value or "ok")
            for line in str(text).strip().splitlines() or ["ok"]:
                ui.line(f"{o.vm}: {line}")
    report(outcomes)


# ---------------------------------------------------------------- the table

GROUPS = {"namespaces": ns_app, "images": images_app, "containers": c_app, "tasks": t_app}
REQUIRED = inspect.Parameter.empty
# Every argument of a subcommand of the table (ops.ctr.SUBCOMMANDS), by the name
# its argv builder gives it: how the command line takes it, and its default.
ARGUMENTS: dict[str, tuple[Any, Any]] = {
    "name": (str, REQUIRED),
    "ref": (RefArg, REQUIRED),
    "cid": (IdArg, REQUIRED),
    "directory": (DirArg, REQUIRED),
    "command": (CmdArgs, None),
    "detach": (
        Annotated[bool, typer.Option("-d", "--detach", help="Do not wait for the task.")],
        False,
    ),
    "signal": (
        Annotated[str, typer.Option("-s", "--signal", help="Signal name or number.")],
        "SIGTERM",
    ),
    "force": (Annotated[bool, typer.Option("-f", "--force", help="Even if it is running.")], False),
    "rm": (
        Annotated[bool, typer.Option("--rm", help="Run in the foreground, remove when it exits.")],
        False,
    ),
    "quiet": (Annotated[bool, typer.Option("-q", "--quiet", help="References only.")], False),
    "json": (JsonOpt, False),
}


def _serve(path: str, sub: ops.Subcommand) -> None:
    """The command of one subcommand of the table: its builder's arguments,
    -q and --json for a listing, and what it prints."""
    *group, name = path.split()
    extra = [*(["quiet"] if sub.quiet else []), *(["json"] if sub.columns else [])]

    def command(ctx: typer.Context, target: ops.Target, args: dict[str, Any]) -> None:
        json, quiet = args.pop("json", False), args.pop("quiet", False)
        outcomes = ops.run(home(ctx), target, path, **args)
        if sub.columns:
            _listing(outcomes, sub.columns, json, sub.quiet if quiet else "")
        elif sub.record:
            ui.print_json([{"vm": o.vm, sub.record: o.value} for o in outcomes if o.ok])
            report(outcomes)
        else:
            _done(outcomes, lambda out: sub.said(out, args))

    own = [(n, *ARGUMENTS[n]) for n in [*sub.params, *extra]]
    taking = options_for("args", own, lambda _, **args: args)
    settings = TRAILING if "command" in sub.params else None
    app = GROUPS[group[0]] if group else ctr_app
    app.command(name, help=sub.help, context_settings=settings)(
        on_machines(sub.namespaced)(taking(command))
    )


for path, sub in ops.SUBCOMMANDS.items():
    _serve(path, sub)


def by_hand(
    app: typer.Typer, name: str, after: str = "", **settings: Any
) -> Callable[[Command], Command]:
    """A command written by hand, on_machines, listed after its group's command
    `after` (where it always stood) or after the table's."""

    def register(fn: Command) -> Command:
        app.command(name, **settings)(on_machines()(fn))
        names = [c.name for c in app.registered_commands]
        if after:
            app.registered_commands.insert(names.index(after) + 1, app.registered_commands.pop())
        return fn

    return register


@by_hand(images_app, "pull", after="ls")
def images_pull(ctx: typer.Context, target: ops.Target, ref: RefArg) -> None:
    """Pull an image (needs a registry the guests reach)."""
    full, outcomes = ops.images_pull(home(ctx), target, ref)
    if full != ref:
        ui.info(f"ctr needs a full reference: pulling {full}")
    _done(outcomes, lambda _: f"pulled {full}")


@by_hand(images_app, "import", after="pull")
def images_import(
    ctx: typer.Context,
    target: ops.Target,
    file: Annotated[Path, typer.Argument(help="OCI or Docker image archive on this host.")],
    name: Annotated[str | None, typer.Option("--name", help="Name the imported image.")] = None,
) -> None:
    """Copy an image archive into the machines and import it (offline labs)."""
    _done(ops.images_import(home(ctx), target, file, name))


@by_hand(t_app, "exec", after="start", context_settings=TRAILING)
def tasks_exec(
    ctx: typer.Context,
    target: ops.Target,
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
    if tty:
        raise typer.Exit(ops.shell(home(ctx), target, cid, command or ["sh"], exec_id))
    if not command:
        from labctl.errors import SpecError

        raise SpecError("t exec needs a command after the container ID")
    chosen, outcomes = ops.tasks_exec(home(ctx), target, cid, command, exec_id, detach)
    if not exec_id:
        ui.info(f"exec id: {chosen}")
    _done(outcomes, lambda out: out or f"{chosen} started in {cid}")


@by_hand(ctr_app, "rm")
def rm(
    ctx: typer.Context,
    target: ops.Target,
    cid: IdArg,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="A container that is not there is no error.")
    ] = False,
) -> None:
    """Kill the container's task if any, then remove task and container."""
    _done(
        ops.rm(home(ctx), target, cid, if_exists),
        lambda done: f"{cid} removed" if done == "removed" else f"{cid} was not there",
    )


@by_hand(ctr_app, "service")
def service(ctx: typer.Context, target: ops.Target, cid: IdArg) -> None:
    """Run a container under systemd, restarted when it dies (ctr has no restart policy)."""
    _done(ops.service(home(ctx), target, cid), lambda unit: f"{unit} enabled and running")


@by_hand(ctr_app, "shell", context_settings=TRAILING)
def shell(
    ctx: typer.Context,
    target: ops.Target,
    cid: IdArg,
    command: CmdArgs = None,
    exec_id: Annotated[str | None, typer.Option("--exec-id", help="Process name.")] = None,
) -> None:
    """An interactive shell inside a running container (one machine)."""
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
    for group, (shown, hidden) in {
        ns_app: ("ns", "namespaces"),
        images_app: ("images", "i"),
        c_app: ("c", "containers"),
        t_app: ("t", "tasks"),
    }.items():
        ctr_app.add_typer(group, name=shown)
        ctr_app.add_typer(group, name=hidden, hidden=True)
    app.add_typer(ctr_app, name="ctr")
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_)
