"""Options and helpers shared by the command modules."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

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


def report(outcomes: Sequence[Any]) -> None:
    """Each machine's error on stderr; then exit with their common code
    (2 bad usage, 124 time limit), or 1 when they differ or any other failed."""
    from labctl import ui
    from labctl.errors import ExitCode

    failed = [o.error for o in outcomes if o.error]
    for error in failed:
        ui.error(error.message, error.hint)
    if failed:
        codes = {e.exit_code for e in failed}
        raise typer.Exit(codes.pop() if len(codes) == 1 else ExitCode.FAILED)
