"""Options and helpers shared by the command modules."""

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labctl.ui import console as ui  # light: rich is imported when it draws

if TYPE_CHECKING:
    from labctl.lab.home import LabHome


def _completer(kind: str) -> Callable[[typer.Context, str], list[str]]:
    """A shell completer of `kind` (see ops.complete.words)."""

    def complete_words(ctx: typer.Context, incomplete: str) -> list[str]:
        from labctl.lab.home import LabHome
        from labctl.ops import complete

        # the root callback does not run while the shell completes: read --home here
        home = LabHome.locate(ctx.find_root().params.get("home"))
        typed = ctx.params.get("args") or []
        words = complete.words(kind, home, typed, _typed_lab(ctx))
        return [w for w in words if w.startswith(incomplete)]

    return complete_words


def _typed_lab(ctx: typer.Context) -> str | None:
    """--lab of this command or of a group above it (`ctr --lab L ps --vm`)."""
    at: Any = ctx
    while at is not None:
        lab = at.params.get("lab") or at.params.get("lab_opt")
        if lab:
            return str(lab)
        at = at.parent
    return None


complete_lab = _completer("lab")
complete_lab_or_topology = _completer("lab-or-topology")
complete_machine = _completer("machine")
complete_target = _completer("target")
complete_ssh_target = _completer("ssh-target")

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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide provisioning detail.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Give up after this many seconds (exit 124).", min=1),
]


Command = Callable[..., None]


def options_for(
    stand_in: str, options: Sequence[tuple[Any, ...]], make: Callable[..., Any], last: bool = False
) -> Callable[[Command], Command]:
    """A command whose parameter `stand_in` typer never sees: the `options` (name,
    annotation[, default: None]) stand where it stands (or last) in its --help, and
    reach it as the one value `make(ctx_or_None, **options)` builds of them."""
    keyword = inspect.Parameter.KEYWORD_ONLY  # typer passes every value by name
    added = [
        inspect.Parameter(o[0], keyword, annotation=o[1], default=o[2] if o[2:] else None)
        for o in options
    ]

    def wrap(fn: Command) -> Command:
        @functools.wraps(fn)
        def command(**values: Any) -> None:
            given = {o[0]: values.pop(o[0]) for o in options}
            fn(**values, **{stand_in: make(values.get("ctx"), **given)})

        own = [p.replace(kind=keyword) for p in inspect.signature(fn).parameters.values()]
        at = len(own) if last else [p.name for p in own].index(stand_in)
        params = [p for p in [*own[:at], *added, *own[at:]] if p.name != stand_in]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


def lab_named(argument: str | None, option: str | None) -> str | None:
    """The lab given as `LAB` or as --lab (an empty name is a name: refused later)."""
    return argument if argument is not None else option


def home(ctx: typer.Context) -> "LabHome":
    from labctl.lab.home import LabHome

    root = ctx.find_root()
    return LabHome.locate((root.obj or {}).get("home"))


def machines_chosen(vm: Sequence[str] | None, all_: bool) -> list[str]:
    """`--vm V ...` or `--all` (the default: every running machine)."""
    from labctl.errors import SpecError

    if vm and all_:
        raise SpecError("--vm and --all exclude each other")
    return list(vm or [])


def error_rows(outcomes: Sequence[Any]) -> list[dict[str, str]]:
    """`{"vm": ..., "error": ...}` for each machine that failed: in --json
    output, a machine is never simply missing."""
    return [{"vm": o.vm, "error": o.error.message} for o in outcomes if o.error]


def listing(
    outcomes: Sequence[Any], columns: str, json: bool, rows: Sequence[Any] | None = None, **how: Any
) -> None:
    """The rows (by default each machine's answer): a table of `columns` (ui.rows, `how`
    its options) or, with --json, a list with each failed machine's error; then the
    failures, reported."""
    rows = [o.value for o in outcomes if o.value is not None] if rows is None else rows
    if json:
        ui.print_json([*rows, *error_rows(outcomes)])
    else:
        ui.rows(columns, rows, **how)
    report(outcomes)


def report(outcomes: Sequence[Any]) -> None:
    """Each machine's error on stderr (the same one once); then exit with their common code
    (2 bad usage, 124 time limit), or 1 when they differ or any other failed."""
    from labctl.session.group import GroupFailed

    failed = [o for o in outcomes if o.error]
    # a failure of the lab as a whole (Vagrant refused its addresses) is said once
    for message, hint in dict.fromkeys((o.error.message, o.error.hint) for o in failed):
        ui.error(message, hint)
    if failed:
        raise typer.Exit(GroupFailed(failed).exit_code)
