"""Options and helpers shared by the command modules."""

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from labctl.home import LabHome

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LabOpt = Annotated[
    str | None,
    typer.Option("--lab", "-l", envvar="LABCTL_LAB", help="The lab (default: the only one)."),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Give up after this many seconds (exit 124).", min=1),
]


def home(ctx: typer.Context) -> "LabHome":
    from labctl.home import LabHome

    root = ctx.find_root()
    return LabHome.locate((root.obj or {}).get("home"))
