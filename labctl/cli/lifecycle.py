"""init, schema, validate, render, up, status, ssh, provision, reload, halt,
suspend, resume, destroy, ls, box build, box ls, doctor, version."""

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labctl.cli.common import (
    JsonOpt,
    LabOpt,
    TimeoutOpt,
    YesOpt,
    complete_lab,
    complete_lab_or_topology,
    complete_ssh_target,
    complete_target,
    home,
    lab_named,
)
from labctl.errors import ExitCode, SpecError

if TYPE_CHECKING:
    from labctl.ops.up.source import Request

LabArg = Annotated[
    str | None,
    typer.Argument(
        help="A topology (nodes, jenkins, mysql-pair) or a lab's name (or -f FILE).",
        autocompletion=complete_lab_or_topology,
    ),
]
FileOpt = Annotated[
    str | None,
    typer.Option("--file", "-f", help="A lab file (YAML): see `labctl init` and `labctl schema`."),
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="The lab's name (default: the file's `name`, or its stem)."),
]
ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        help="virtualbox, libvirt or docker (default: LABCTL_PROVIDER, else detected).",
    ),
]
BoxOpt = Annotated[str | None, typer.Option("--box", help="Vagrant box (docker: image).")]
SubnetOpt = Annotated[
    str | None,
    typer.Option(
        "--subnet", help="Private /24 as three octets (default: first free from 192.168.56)."
    ),
]
CpusOpt = Annotated[int | None, typer.Option("--cpus", help="CPUs per machine.")]
MemoryOpt = Annotated[int | None, typer.Option("--memory", help="MiB of memory per machine.")]
LibvirtUriOpt = Annotated[
    str | None, typer.Option("--libvirt-uri", help="libvirt connection URI (remote hosts).")
]
AllowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host-path",
        help="A host file or folder outside the lab file's folder that the lab file may "
        "name (scripts, war file); repeat for more.",
    ),
]
ContainerdOpt = Annotated[
    bool | None,
    typer.Option("--containerd/--no-containerd", help="Provision containerd in every machine."),
]
CountOpt = Annotated[int | None, typer.Option("--count", help="nodes: how many machines (1-9).")]
AgentsOpt = Annotated[int | None, typer.Option("--agents", help="jenkins: agents (0-9).")]
JdkOpt = Annotated[int | None, typer.Option("--jdk", help="jenkins: JDK 17 or 21.")]
WarOpt = Annotated[
    str | None, typer.Option("--jenkins-war", help="jenkins: install from this jenkins.war.")
]
ReplicasOpt = Annotated[int | None, typer.Option("--replicas", help="mysql-pair: replicas (1-5).")]
ChainOpt = Annotated[
    bool | None, typer.Option("--chain/--star", help="mysql-pair: cascade replicas.")
]
GtidOpt = Annotated[
    bool | None, typer.Option("--gtid/--no-gtid", help="mysql-pair: GTID auto-positioning.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide provisioning detail.")]
TargetArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="[LAB] [MACHINE...] (default: every machine).", autocompletion=complete_target
    ),
]
LAB_WIDE = ("provider", "box", "subnet", "cpus", "memory", "libvirt_uri")
TOPOLOGY = ("containerd", "count", "agents", "jdk", "jenkins_war", "replicas", "chain", "gtid")
# `up` and `render`: a lab or topology, or a lab file, and all that shapes it
SHAPING = ("lab", "file", "name", *LAB_WIDE, "allow_host_path", *TOPOLOGY)


@dataclasses.dataclass(frozen=True)
class Given:
    """The options that shape a lab, declared once: a command takes those it
    names in `lab_options`, and gets them as one Given (None: not given, or
    not an option of that command)."""

    lab: LabArg = None
    file: FileOpt = None
    name: NameOpt = None
    provider: ProviderOpt = None
    box: BoxOpt = None
    subnet: SubnetOpt = None
    cpus: CpusOpt = None
    memory: MemoryOpt = None
    libvirt_uri: LibvirtUriOpt = None
    allow_host_path: AllowOpt = None
    containerd: ContainerdOpt = None
    count: CountOpt = None
    agents: AgentsOpt = None
    jdk: JdkOpt = None
    jenkins_war: WarOpt = None
    replicas: ReplicasOpt = None
    chain: ChainOpt = None
    gtid: GtidOpt = None

    def topology_params(self) -> dict[str, Any]:
        """The topology parameters given (--count, --replicas ...), in the order above."""
        from labctl.labfile.topologies import PARAMS

        names = {k for own in PARAMS.values() for k in own}
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in given.items() if k in names and v is not None}

    def request(self) -> "Request":
        """What ops is asked for: a lab file or a topology's parameters, and
        the lab-wide values that win over the file's."""
        from labctl.ops.up.source import Request

        return Request(
            file=self.file,
            params=self.topology_params(),
            allow_host_paths=tuple(self.allow_host_path or ()),
            **{k: getattr(self, k) for k in LAB_WIDE},
        )


def lab_options(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command that takes these options of Given where its own `given`
    parameter stands, in this order (its --help's); they reach it as one Given."""
    hints = {f.name: f.type for f in dataclasses.fields(Given)}
    keyword = inspect.Parameter.KEYWORD_ONLY  # typer passes every value by name

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def command(**values: Any) -> None:
            given = Given(**{name: values.pop(name) for name in names})
            fn(**values, given=given)

        params: list[inspect.Parameter] = []
        for own in inspect.signature(fn).parameters.values():
            if own.name == "given":
                params += [
                    inspect.Parameter(n, keyword, default=None, annotation=hints[n]) for n in names
                ]
            else:
                params.append(own.replace(kind=keyword))
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


def _split(
    ctx: typer.Context, args: list[str] | None, lab: str | None
) -> tuple[str | None, list[str]]:
    from labctl.ops.lifecycle import split_target

    return split_target(home(ctx), args or [], lab)


@lab_options(*SHAPING)
def render(
    ctx: typer.Context,
    given: Given,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Print the Vagrantfile, write nothing.")
    ] = False,
) -> None:
    """Write the lab folder (Vagrantfile + provision/), validate it, print its path."""
    from labctl.ops.up.folder import render_lab, render_text
    from labctl.ui import console as ui

    req = given.request()
    if stdout:
        sys.stdout.write(render_text(home(ctx), given.lab, given.name, req))
        return
    done = render_lab(home(ctx), given.lab, given.name, req)
    ui.info(f"lab {done.spec.name}: {len(done.spec.machines)} machines, validated by vagrant")
    if done.note:
        ui.info(done.note)
    print(done.path)


@lab_options(*SHAPING)
def up(
    ctx: typer.Context,
    given: Given,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only; change nothing.")
    ] = False,
) -> None:
    """Bring a lab to what its lab file (or topology) says: a new lab is rendered and
    brought up; an existing one gets a plan, printed first, and only that is applied."""
    _up(ctx, given.lab, given.name, given.request(), timeout, json, quiet, dry_run)


def _up(
    ctx: typer.Context,
    lab: str | None,
    name: str | None,
    req: "Request",
    timeout: float | None,
    json: bool,
    quiet: bool,
    dry_run: bool = False,
) -> None:
    from labctl.ops.up.apply import up
    from labctl.ops.up.prepare import prepare
    from labctl.ui import console as ui

    if dry_run:
        prepared = prepare(home(ctx), lab, name, req)
        ui.plan(prepared.spec.name, prepared.steps, json, new=prepared.existing is None)
        return
    result = up(
        home(ctx),
        lab,
        name,
        req,
        ui.Progress(verbose=not quiet),
        timeout,
        on_plan=lambda p: ui.plan(p.spec.name, p.steps, False, new=p.existing is None, quiet=True),
    )
    ui.up_result(result, json)


@lab_options("name", "replicas", "chain", "gtid", *LAB_WIDE, "containerd")
def mysql_pair(
    ctx: typer.Context,
    given: Given,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A MySQL/MariaDB primary with replicas, replication running and verified (= up mysql-pair)."""
    _up(ctx, "mysql-pair", given.name, given.request(), timeout, json, quiet)


@lab_options("cpus", "memory", *TOPOLOGY)
def init(
    topology: Annotated[
        str,
        typer.Argument(
            help="nodes, jenkins or mysql-pair.", autocompletion=complete_lab_or_topology
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write it ('-': standard output).")
    ] = "lab.yaml",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    given: Given = Given(),
) -> None:
    """Write a built-in topology as an editable lab file (./lab.yaml; never over a file)."""
    from pathlib import Path

    from labctl.ops.up.source import init, init_text
    from labctl.ui import console as ui

    sizes = {"cpus": given.cpus, "memory": given.memory}
    params = {**given.topology_params(), **{k: v for k, v in sizes.items() if v is not None}}
    if output == "-":
        sys.stdout.write(init_text(topology, params))
        return
    path = init(topology, params, Path(output), force)
    ui.success(f"wrote {path}: edit it, then labctl up -f {path}")


def schema() -> None:
    """The lab file's JSON Schema (for editors: completion and checks)."""
    import json

    from labctl.labfile import schema as lab_schema

    print(json.dumps(lab_schema.json_schema(), indent=2))


@lab_options("name", "provider", "subnet", "allow_host_path")
def validate(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The lab file to check.")],
    given: Given,
    json: JsonOpt = False,
) -> None:
    """Check a lab file (schema, sources, addresses, scripts) and show its machines; changes nothing."""
    from labctl.ops.up.prepare import Purpose, prepare
    from labctl.ui import console as ui

    req = dataclasses.replace(given, file=file).request()
    spec = prepare(home(ctx), None, given.name, req, Purpose.VALIDATE).spec
    ui.lab_machines(spec, json)
    if not json:
        ui.success(f"{file}: lab {spec.name}, {len(spec.machines)} machines, valid")


VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say who answered: the provider, or vagrant status.")
]


def status(
    ctx: typer.Context,
    lab: Annotated[str | None, typer.Argument(autocompletion=complete_lab)] = None,
    lab_opt: LabOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Every machine of a lab: hostname, IP, state, provider (asked of the provider itself)."""
    from labctl.ops import lifecycle
    from labctl.ui import console as ui

    view = lifecycle.status_view(home(ctx), lab_named(lab, lab_opt))
    ui.print_json(view.rows) if json else ui.machines(view.rows)
    if verbose:
        ui.asked(view.asked)


def ls(ctx: typer.Context, json: JsonOpt = False, verbose: VerboseOpt = False) -> None:
    """Every lab with its machines' states."""
    from labctl.ops import lifecycle
    from labctl.ui import console as ui

    view = lifecycle.ls(home(ctx))
    rows = view.rows
    if verbose:
        ui.asked(view.asked)
    if json:
        ui.print_json(rows)
    elif rows:
        ui.machines(rows, show_lab=True)
    else:
        ui.info(f"no labs in {home(ctx).root}; create one: labctl up nodes")


def ssh(
    ctx: typer.Context,
    args: Annotated[
        list[str], typer.Argument(help="[LAB] MACHINE", autocompletion=complete_ssh_target)
    ],
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="Run this and exit.")
    ] = None,
    lab_opt: LabOpt = None,
) -> None:
    """A shell in a machine, or one command with -c (exit status passed through)."""
    from labctl.ops import guestcmd

    if len(args) > 2:
        raise SpecError("usage: labctl ssh [LAB] MACHINE [-c COMMAND]")
    lab, machine = (args[0], args[1]) if len(args) == 2 else (lab_opt, args[0])
    code = guestcmd.ssh(home(ctx), lab, machine, command)
    raise typer.Exit(code)


def _action(action: str, doc: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        args: TargetArgs = None,
        lab_opt: LabOpt = None,
        timeout: TimeoutOpt = None,
        json: JsonOpt = False,
    ) -> None:
        from labctl.ops import lifecycle
        from labctl.ui import console as ui

        lab, machines = _split(ctx, args, lab_opt)
        rows = lifecycle.act(home(ctx), lab, action, machines, ui.Progress(), timeout)
        ui.print_json(rows) if json else ui.machines(rows)

    command.__doc__ = doc
    command.__name__ = action
    return command


def reload(
    ctx: typer.Context,
    args: TargetArgs = None,
    lab_opt: LabOpt = None,
    provision: Annotated[
        bool, typer.Option("--provision", help="Run the provisioners again.")
    ] = False,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Restart machines (halt + up), with --provision to provision them again."""
    from labctl.ops import lifecycle
    from labctl.ui import console as ui

    lab, machines = _split(ctx, args, lab_opt)
    rows = lifecycle.act(
        home(ctx), lab, "reload", machines, ui.Progress(), timeout, provision=provision or None
    )
    ui.print_json(rows) if json else ui.machines(rows)


def destroy(
    ctx: typer.Context, args: TargetArgs = None, lab_opt: LabOpt = None, yes: YesOpt = False
) -> None:
    """Destroy a lab's machines and its folder. A lab that is gone: nothing to do."""
    from labctl.ops import lifecycle
    from labctl.ui import console as ui

    lab, machines = _split(ctx, args, lab_opt)
    what = " ".join([lab or "the lab", *machines])
    if not yes:
        if not sys.stdin.isatty():
            raise SpecError("refusing to destroy without --yes (no terminal to ask on)")
        if not typer.confirm(f"Destroy {what}?"):
            raise typer.Exit(ExitCode.FAILED)
    name = lifecycle.destroy(home(ctx), lab, machines, ui.Progress())
    if name:
        ui.success(
            f"destroyed lab {name}" + (f" machines {' '.join(machines)}" if machines else "")
        )
    else:
        ui.info(f"no lab {lab + ' ' if lab else ''}here: nothing to destroy")


def box_build(
    provider: ProviderOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if present.")] = False,
) -> None:
    """Build labctl's box offline from Debian's packages: the docker provider's
    image, or the libvirt provider's VM box (default: this host's provider)."""
    from labctl.ops import host
    from labctl.ui import console as ui

    image, built = host.build_box(provider, force, lambda event: ui.info(f"  box | {event.text}"))
    if built:
        ui.success(f"built {image}")
    else:
        ui.info(f"{image} is already there (--force rebuilds it)")


def box_ls(json: JsonOpt = False) -> None:
    """labctl's boxes on this host: what each carries, its size, whether it is current."""
    from labctl.ops import host
    from labctl.ui import console as ui

    rows = host.box_list()
    if json:
        ui.print_json(rows)
        return
    ui.table(
        ["PROVIDER", "BOX", "VERSION", "CARRIES", "SIZE", "BUILT", "STATE"],
        [
            [
                b.provider,
                b.name,
                b.version,
                ",".join(b.carries) or "-",
                f"{b.size / 1e6:.0f} MB",
                b.built or "-",
                b.state,
            ]
            for b in rows
        ],
    )


def doctor(json: JsonOpt = False) -> None:
    """Pre-flight: Vagrant, providers, Docker engine, box image, KVM; each with its fix."""
    from labctl.ops import host
    from labctl.ui import console as ui

    results = host.checks()
    if json:
        ui.print_json(results)
    else:
        ui.table(
            ["CHECK", "OK", "DETAIL", "FIX"],
            [[c.name, "yes" if c.ok else "no", c.detail, "" if c.ok else c.fix] for c in results],
            styles={1: lambda v: "green" if v == "yes" else "red"},
        )
    if not all(c.ok or not c.required for c in results):
        raise typer.Exit(ExitCode.FAILED)


def version(json: JsonOpt = False) -> None:
    """labctl's version, Vagrant's and the providers' (a missing one says so)."""
    from labctl.ops import host
    from labctl.ui import console as ui

    found = host.versions()
    if json:
        ui.print_json(found)
        return
    ui.table(
        ["NAME", "VERSION", "NOTE"],
        [[v.name, v.version or "missing", v.note] for v in found],
        styles={1: lambda text: "yellow" if text == "missing" else ""},
    )


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(schema)
    app.command()(validate)
    app.command()(render)
    app.command()(up)
    app.command("mysql-pair")(mysql_pair)
    app.command()(status)
    app.command()(ssh)
    app.command(name="provision")(_action("provision", "Run the provisioners of machines again."))
    app.command()(reload)
    app.command(name="halt")(_action("halt", "Shut machines down (keeps their disks)."))
    app.command(name="suspend")(_action("suspend", "Save machines' state and stop them."))
    app.command(name="resume")(_action("resume", "Resume suspended machines."))
    app.command()(destroy)
    app.command()(ls)
    app.command()(doctor)
    app.command()(version)
    box_app = typer.Typer(help="labctl's own boxes (docker, libvirt).", no_args_is_help=True)
    box_app.command(name="build")(box_build)
    box_app.command(name="ls")(box_ls)
    app.add_typer(box_app, name="box")
