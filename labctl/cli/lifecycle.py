"""init, schema, validate, render, up, status, ssh, provision, reload, halt,
suspend, resume, destroy, ls, box build, box ls, cache start/stop/status,
doctor, version."""

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labctl.cli.common import (
    Command,
    JsonOpt,
    LabOpt,
    QuietOpt,
    TimeoutOpt,
    YesOpt,
    complete_lab,
    complete_lab_or_topology,
    complete_ssh_target,
    complete_target,
    home,
    lab_named,
    options_for,
)
from labctl.errors import ExitCode, SpecError
from labctl.ui import console as ui

if TYPE_CHECKING:
    from labctl.ops.up.source import Request


def _option(info: Any) -> Any:
    """A field of Given: None unless given, and how the command line takes it."""
    return dataclasses.field(default=None, metadata={"typer": info})


PROVIDER = typer.Option(
    "--provider", help="virtualbox, libvirt or docker (default: LABCTL_PROVIDER, else detected)."
)
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

    lab: str | None = _option(
        typer.Argument(
            help="A topology (nodes, jenkins, mysql-pair) or a lab's name (or -f FILE).",
            autocompletion=complete_lab_or_topology,
        )
    )
    file: str | None = _option(
        typer.Option(
            "--file", "-f", help="A lab file (YAML): see `labctl init` and `labctl schema`."
        )
    )
    name: str | None = _option(
        typer.Option(
            "--name", "-n", help="The lab's name (default: the file's `name`, or its stem)."
        )
    )
    provider: str | None = _option(PROVIDER)
    box: str | None = _option(typer.Option("--box", help="Vagrant box (docker: image)."))
    subnet: str | None = _option(
        typer.Option(
            "--subnet", help="Private /24 as three octets (default: first free from 192.168.56)."
        )
    )
    cpus: int | None = _option(typer.Option("--cpus", help="CPUs per machine."))
    memory: int | None = _option(typer.Option("--memory", help="MiB of memory per machine."))
    libvirt_uri: str | None = _option(
        typer.Option("--libvirt-uri", help="libvirt connection URI (remote hosts).")
    )
    allow_host_path: list[str] | None = _option(  # noqa: RUF009 (a field(), not a default)
        typer.Option(
            "--allow-host-path",
            help="A host file or folder outside the lab file's folder that the lab file may "
            "name (scripts, war file); repeat for more.",
        )
    )
    containerd: bool | None = _option(
        typer.Option("--containerd/--no-containerd", help="Provision containerd in every machine.")
    )
    count: int | None = _option(typer.Option("--count", help="nodes: how many machines (1-9)."))
    agents: int | None = _option(typer.Option("--agents", help="jenkins: agents (0-9)."))
    jdk: int | None = _option(typer.Option("--jdk", help="jenkins: JDK 17 or 21."))
    jenkins_war: str | None = _option(
        typer.Option("--jenkins-war", help="jenkins: install from this jenkins.war.")
    )
    replicas: int | None = _option(typer.Option("--replicas", help="mysql-pair: replicas (1-5)."))
    chain: bool | None = _option(
        typer.Option("--chain/--star", help="mysql-pair: cascade replicas.")
    )
    gtid: bool | None = _option(
        typer.Option("--gtid/--no-gtid", help="mysql-pair: GTID auto-positioning.")
    )

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


def lab_options(*names: str) -> Callable[[Command], Command]:
    """A command that takes these options of Given where its own `given`
    parameter stands, in this order (its --help's); they reach it as one Given."""
    hints = {f.name: Annotated[f.type, f.metadata["typer"]] for f in dataclasses.fields(Given)}
    return options_for("given", [(n, hints[n]) for n in names], lambda _, **given: Given(**given))


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

    req = given.request()
    if stdout:
        sys.stdout.write(render_text(home(ctx), given.lab, given.name, req))
        return
    done = render_lab(home(ctx), given.lab, given.name, req)
    ui.info(f"lab {done.spec.name}: {len(done.spec.machines)} machines, validated by vagrant")
    if done.note:
        ui.info(done.note)
    print(done.path)


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
    from labctl.ops.up import apply
    from labctl.ops.up.prepare import prepare

    lab, name, req = given.lab, given.name, given.request()
    if dry_run:
        prepared = prepare(home(ctx), lab, name, req)
        ui.plan(prepared.spec.name, prepared.steps, json, new=prepared.existing is None)
        return
    result = apply.up(
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
    up(ctx, dataclasses.replace(given, lab="mysql-pair"), timeout, json, quiet)


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

    view = lifecycle.status_view(home(ctx), lab_named(lab, lab_opt))
    ui.print_json(view.rows) if json else ui.machines(view.rows)
    if verbose:
        ui.asked(view.asked)


def ls(ctx: typer.Context, json: JsonOpt = False, verbose: VerboseOpt = False) -> None:
    """Every lab with its machines' states."""
    from labctl.ops import lifecycle

    view = lifecycle.ls(home(ctx))
    if verbose:
        ui.asked(view.asked)
    if json:
        ui.print_json(view.rows)
    elif view.rows:
        ui.machines(view.rows, show_lab=True)
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


def _action(action: str, doc: str, *options: tuple[str, Any]) -> Command:
    """The command of a lifecycle action on machines, its own `options` after --lab."""

    def command(
        ctx: typer.Context,
        args: TargetArgs = None,
        lab_opt: LabOpt = None,
        how: dict[str, Any] | None = None,
        timeout: TimeoutOpt = None,
        json: JsonOpt = False,
    ) -> None:
        from labctl.ops import lifecycle

        lab, machines = lifecycle.split_target(home(ctx), args or [], lab_opt)
        rows = lifecycle.act(home(ctx), lab, action, machines, ui.Progress(), timeout, **how or {})
        ui.print_json(rows) if json else ui.machines(rows)

    command.__doc__ = doc
    return options_for("how", options, lambda _, **how: how)(command)


def destroy(
    ctx: typer.Context, args: TargetArgs = None, lab_opt: LabOpt = None, yes: YesOpt = False
) -> None:
    """Destroy a lab's machines and its folder. A lab that is gone: nothing to do."""
    from labctl.ops import lifecycle

    lab, machines = lifecycle.split_target(home(ctx), args or [], lab_opt)
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
    provider: Annotated[str | None, PROVIDER] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if present.")] = False,
) -> None:
    """Build labctl's box offline from Debian's packages: the docker provider's
    image, or the libvirt provider's VM box (default: this host's provider)."""
    from labctl.ops import host

    image, built = host.build_box(provider, force, lambda event: ui.info(f"  box | {event.text}"))
    if built:
        ui.success(f"built {image}")
    else:
        ui.info(f"{image} is already there (--force rebuilds it)")


def box_ls(json: JsonOpt = False) -> None:
    """labctl's boxes on this host: what each carries, its size, whether it is current."""
    from labctl.ops import host

    boxes = host.box_list()
    if json:
        ui.print_json(boxes)
        return
    made = {
        "CARRIES": lambda b: ",".join(b.carries) or "-",
        "SIZE": lambda b: f"{b.size / 1e6:.0f} MB",
        "BUILT": lambda b: b.built or "-",
    }
    ui.rows("PROVIDER, BOX=name, VERSION, CARRIES, SIZE, BUILT, STATE", boxes, made)


def cache_start() -> None:
    """Start the host's package cache (apt-cacher-ng): what guests download
    with apt over http comes from the archive once per host."""
    from labctl.ops import host

    state, started = host.cache_start()
    where = f"port {state.port}, files in {state.folder}"
    if started:
        ui.success(f"package cache started ({where})")
    else:
        ui.info(f"package cache is already running ({where})")


def cache_stop() -> None:
    """Stop the host's package cache; its files stay for the next start."""
    from labctl.ops import host

    if host.cache_stop():
        ui.success("package cache stopped")
    else:
        ui.info("package cache is not running: nothing to stop")


def cache_status(json: JsonOpt = False) -> None:
    """The host's package cache: running or not, its size, hits and misses."""
    from labctl.ops import host

    state = host.cache_state()
    if json:
        ui.print_json(state)
        return
    ui.rows(
        "CACHE, PORT, SIZE, HITS, MISSES, FOLDER",
        [state],
        {
            "CACHE": lambda c: "running" if c.running else "stopped",
            "SIZE": lambda c: f"{c.size / 1e6:.1f} MB",
            "HITS": lambda c: f"{c.stats.hits} ({c.stats.bytes_served / 1e6:.1f} MB sent)",
            "MISSES": lambda c: f"{c.stats.misses} ({c.stats.bytes_fetched / 1e6:.1f} MB fetched)",
        },
        {"CACHE": ui.green_if("running")},
    )


def doctor(json: JsonOpt = False) -> None:
    """Pre-flight: Vagrant, providers, Docker engine, box image, KVM; each with its fix."""
    from labctl.ops import host

    results = host.checks()
    if json:
        ui.print_json(results)
    else:
        made = {"OK": lambda c: "yes" if c.ok else "no", "FIX": lambda c: "" if c.ok else c.fix}
        ui.rows("CHECK=name, OK, DETAIL, FIX", results, made, {"OK": ui.green_if("yes")})
    if not all(c.ok or not c.required for c in results):
        raise typer.Exit(ExitCode.FAILED)


def version(json: JsonOpt = False) -> None:
    """labctl's version, Vagrant's and the providers' (a missing one says so)."""
    from labctl.ops import host

    found = host.versions()
    if json:
        ui.print_json(found)
        return
    ui.rows(
        "NAME, VERSION, NOTE",
        found,
        {"VERSION": lambda v: v.version or "missing"},
        {"VERSION": lambda text: "yellow" if text == "missing" else ""},
    )


ProvisionOpt = Annotated[bool, typer.Option("--provision", help="Run the provisioners again.")]
ACTIONS: dict[str, tuple[Any, ...]] = {
    "provision": ("Run the provisioners of machines again.",),
    "reload": (
        "Restart machines (halt + up), with --provision to provision them again.",
        ("provision", ProvisionOpt),
    ),
    "halt": ("Shut machines down (keeps their disks).",),
    "suspend": ("Save machines' state and stop them.",),
    "resume": ("Resume suspended machines.",),
}


def register(app: typer.Typer) -> None:
    for command in (init, schema, validate, render, status, ssh, destroy, ls, doctor, version):
        app.command()(command)
    app.command("up")(lab_options(*SHAPING)(up))
    app.command("mysql-pair")(mysql_pair)
    for action, (doc, *options) in ACTIONS.items():
        app.command(action)(_action(action, doc, *options))
    box_app = typer.Typer(help="labctl's own boxes (docker, libvirt).", no_args_is_help=True)
    box_app.command(name="build")(box_build)
    box_app.command(name="ls")(box_ls)
    app.add_typer(box_app, name="box")
    cache_app = typer.Typer(
        help="The host's package cache, shared by every guest of every lab.",
        no_args_is_help=True,
    )
    cache_app.command(name="start")(cache_start)
    cache_app.command(name="stop")(cache_stop)
    cache_app.command(name="status")(cache_status)
    app.add_typer(cache_app, name="cache")
