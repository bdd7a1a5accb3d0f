"""Options and helpers shared by the command modules."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from labctl.home import LabHome


def _completion_home(ctx: typer.Context) -> "LabHome":
    # the root callback does not run while the shell completes: read --home here
    from labctl.home import LabHome

    return LabHome.locate(ctx.find_root().params.get("home"))


def _matching(words: Sequence[str], incomplete: str) -> list[str]:
    return [w for w in words if w.startswith(incomplete)]


def complete_lab(ctx: typer.Context, incomplete: str) -> list[str]:
    from labctl.ops import complete

    return _matching(complete.labs(_completion_home(ctx)), incomplete)


def complete_lab_or_topology(ctx: typer.Context, incomplete: str) -> list[str]:
    from labctl.ops import complete

    return _matching(complete.labs_and_topologies(_completion_home(ctx)), incomplete)


def complete_machine(ctx: typer.Context, incomplete: str) -> list[str]:
    from labctl.ops import complete

    return _matching(complete.machines(_completion_home(ctx), _typed_lab(ctx)), incomplete)


def _typed_lab(ctx: typer.Context) -> str | None:
    """--lab of this command or of a group above it (`ctr --lab L ps --vm`)."""
    at: Any = ctx
    while at is not None:
        lab = at.params.get("lab") or at.params.get("lab_opt")
        if lab:
            return str(lab)
        at = at.parent
    return None


def complete_target(ctx: typer.Context, incomplete: str) -> list[str]:
    from labctl.ops import complete

    typed = ctx.params.get("args") or []
    words = complete.target(_completion_home(ctx), typed, ctx.params.get("lab_opt"))
    return _matching(words, incomplete)


def complete_ssh_target(ctx: typer.Context, incomplete: str) -> list[str]:
    from labctl.ops import complete

    typed = ctx.params.get("args") or []
    words = complete.ssh_target(_completion_home(ctx), typed, ctx.params.get("lab_opt"))
    return _matching(words, incomplete)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LabOpt = Annotated[
    str | None,
    typer.Option(
        "--lab",
        "-l",
        envvar="LABCTL_LAB",
        help="The lab (default: the only one).",
        autocompletion=complete_lab,
    ),
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
