"""`labctl link ...`: partitions and impaired links between a lab's machines."""

from typing import Annotated

import typer

from labctl.cli.common import JsonOpt, LabOpt, complete_machine, home, listing
from labctl.ui import console as ui

link_app = typer.Typer(
    help="Network faults between a lab's machines: cut, heal, impair, clear.", no_args_is_help=True
)
Vm = Annotated[str, typer.Argument(help="A machine.", autocompletion=complete_machine)]
MaybeVm = Annotated[str | None, typer.Argument(help="A machine.", autocompletion=complete_machine)]


def _print(rows: list, json: bool) -> None:
    if json:
        ui.print_json(rows)
    else:
        for r in rows:
            ui.info(f"{r.vm}: {r.detail}")


@link_app.command("cut")
def cut(ctx: typer.Context, a: Vm, b: Vm, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """Drop all traffic between two machines (iptables in both; every provider)."""
    from labctl.ops import link

    _print(link.cut(home(ctx), lab, a, b), json)


@link_app.command("heal")
def heal(
    ctx: typer.Context,
    a: MaybeVm = None,
    b: MaybeVm = None,
    lab: LabOpt = None,
    json: JsonOpt = False,
) -> None:
    """Undo the cut between two machines; with none named, every cut labctl made."""
    from labctl.ops import link

    _print(link.heal(home(ctx), lab, a, b), json)


@link_app.command("ls")
def ls(ctx: typer.Context, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """The cuts and impairments in place, machine by machine."""
    from dataclasses import asdict

    from labctl.ops import link

    outcomes = link.faults(home(ctx), lab)
    found = [{"vm": o.vm, **asdict(o.value)} for o in outcomes if o.value is not None]
    made = {
        "CUT FROM": lambda f: ", ".join(f["cut_from"]) or "-",
        "IMPAIRED": lambda f: f"{f['dev']}: {f['impaired']}" if f["impaired"] else "-",
    }
    listing(outcomes, "VM, CUT FROM, IMPAIRED", json, found, made=made)


@link_app.command("impair")
def impair(
    ctx: typer.Context,
    vm: Vm,
    delay: Annotated[str | None, typer.Option("--delay", help="e.g. 200ms")] = None,
    jitter: Annotated[
        str | None, typer.Option("--jitter", help="varies --delay, e.g. 20ms")
    ] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="e.g. 1%")] = None,
    lab: LabOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delay or drop what a machine sends on the private network (tc netem; needs the guest's own kernel)."""
    from labctl.ops import link

    _print([link.impair(home(ctx), lab, vm, delay, jitter, loss)], json)


@link_app.command("clear")
def clear(ctx: typer.Context, vm: Vm, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """Remove a machine's impairment."""
    from labctl.ops import link

    _print([link.clear(home(ctx), lab, vm)], json)


def register(app: typer.Typer) -> None:
    app.add_typer(link_app, name="link")
