"""`labctl ssh-config`, `labctl inventory`, `labctl graph`: the lab handed to
OpenSSH, Ansible and a picture."""

from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.common import LabOpt, complete_lab, home, lab_named, report
from labctl.ui import console as ui

LabArg = Annotated[str | None, typer.Argument(autocompletion=complete_lab, show_default=False)]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")]
DeclaredOpt = Annotated[
    bool, typer.Option("--declared", help="The lab file's roles; ask no server.")
]


def _emit(made: tuple[str, list[Any]], output: Path | None = None) -> None:
    """The text made, on stdout or in `output`; then the machines that failed."""
    from labctl.local.fsutil import atomic_write

    text, failed = made
    if output is None:
        ui.raw(text)
    else:
        atomic_write(output, text, mode=0o644)
        ui.info(f"wrote {output}")
    report(failed)


def ssh_config(ctx: typer.Context, lab: LabArg = None, lab_opt: LabOpt = None) -> None:
    """OpenSSH Host blocks for every machine (`LAB-VM` and `VM`), with the host keys labctl pinned:
    ssh -F <(labctl ssh-config) LAB-node1"""
    from labctl.ops import handoff

    _emit(handoff.ssh_config(home(ctx), lab_named(lab, lab_opt)))


def inventory(
    ctx: typer.Context,
    lab: LabArg = None,
    lab_opt: LabOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="ansible (INI), yaml or json.")
    ] = "ansible",
    declared: DeclaredOpt = False,
    output: OutputOpt = None,
) -> None:
    """An Ansible inventory: groups by role (mysql groups by the servers' live roles) and lab."""
    from labctl.ops import handoff

    _emit(handoff.inventory(home(ctx), lab_named(lab, lab_opt), fmt, declared), output)


def graph(
    ctx: typer.Context,
    lab: LabArg = None,
    lab_opt: LabOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="mermaid, dot, svg or html (default: -o's extension, else mermaid).",
        ),
    ] = None,
    declared: DeclaredOpt = False,
    output: OutputOpt = None,
) -> None:
    """Machines, their network, replication (with lag), Jenkins agents, containerd tasks."""
    from labctl.ops import handoff

    chosen = handoff.graph_format(fmt, output)
    _emit(handoff.draw(home(ctx), lab_named(lab, lab_opt), chosen, declared), output)


def register(app: typer.Typer) -> None:
    app.command("ssh-config")(ssh_config)
    app.command("inventory")(inventory)
    app.command("graph")(graph)
