"""Drawing: rich tables for people, JSON for scripts, Vagrant's progress per machine.

Tables and JSON go to stdout; progress, warnings and errors go to stderr, so
`labctl ... --json | jq` always gets clean JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labctl.events import Event

_COLORS = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_green",
)
_STATE_STYLE = {"running": "green", "poweroff": "red", "not_created": "dim", "stopped": "red"}


@cache
def out() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@cache
def err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def to_plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_plain(value), indent=2, sort_keys=False) + "\n")


Style = Callable[[str], str]


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    styles: Mapping[int, Style] | None = None,
) -> None:
    """A table: rich on a terminal; plain aligned columns when piped (easy to
    grep and awk, and no rich import for scripts)."""
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    if not sys.stdout.isatty():
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        for line in [list(columns), *cells]:
            sys.stdout.write(
                "   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n"
            )
        return
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in cells:
        t.add_row(
            *(
                f"[{styles[i](v)}]{escape(v)}[/]"
                if styles and i in styles and styles[i](v)
                else escape(v)
                for i, v in enumerate(r)
            )
        )
    out().print(t)


def rows(
    columns: str,
    items: Iterable[Any],
    made: Mapping[str, Callable[[Any], Any]] | None = None,
    styles: Mapping[str, Style] | None = None,
) -> None:
    """A table of records (dataclasses or dicts), its columns declared once: `columns`
    reads like the header line, `HEADER` (the field `header`) or `HEADER=field`, comma
    separated; a header of `made` is what its function makes of the record, and
    `styles` colour a column's cells. A list is shown as `a, b`."""
    heads, fields = zip(*(c.strip().partition("=")[::2] for c in columns.split(",")), strict=True)
    made = made or {}

    def cell(item: Any, head: str, field: str) -> Any:
        if head in made:
            return made[head](item)
        name = field or head.lower()
        value = item.get(name, "") if isinstance(item, Mapping) else getattr(item, name)
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value

    table(
        heads,
        [[cell(i, h, f) for h, f in zip(heads, fields, strict=True)] for i in items],
        {heads.index(h): style for h, style in (styles or {}).items()},
    )


def green_if(word: str) -> Style:
    """Green for `word`, red for anything else."""
    return lambda text: "green" if text == word else "red"


def state_style(text: str) -> str:
    return _STATE_STYLE.get(text, "yellow")


def machines(items: Sequence[Any], show_lab: bool = False) -> None:
    """The machine table of `up`, `status`, `ls`."""
    columns = "MACHINE=name, HOSTNAME, IP, STATE, PROVIDER, ROLE"
    rows(f"LAB, {columns}" if show_lab else columns, items, styles={"STATE": state_style})


def lab_machines(spec: Any, json: bool) -> None:
    """The machines a lab file declares (after `count`), as `validate` shows them."""
    if json:
        print_json(
            [
                {
                    k: getattr(m, k)
                    for k in ("name", "hostname", "ip", "roles", "cpus", "memory", "box")
                }
                for m in spec.machines
            ]
        )
        return
    rows("MACHINE=name, HOSTNAME, IP, ROLES=role, CPUS, MEMORY, BOX", spec.machines)


def up_result(result: Any, json: bool) -> None:
    """After `up` (and `mysql add-replica`): the machine table and the notes."""
    if json:
        print_json(result.rows)
        return
    machines(result.rows)
    for note in result.notes:
        info(note)


_ACTION_STYLE = {
    "add": "green",
    "remove": "red",
    "recreate": "red",
    "reload": "yellow",
    "provision": "yellow",
    "keep": "dim",
}


def plan(
    lab: str, steps: Sequence[Any], json: bool, new: bool = False, quiet: bool = False
) -> None:
    """A plan, one line per machine and action: on stdout for `up --dry-run`,
    on stderr before `up` applies it (quiet: only when it changes an existing lab)."""
    from labctl.project import plan as plans

    if json:
        print_json(plans.as_rows(list(steps)))
        return
    changes = [s for s in steps if s.changes]
    if quiet and (new or not changes):
        return
    console = err() if quiet else out()
    if not changes:
        console.print(f"lab {lab}: nothing to change", markup=False)
        return
    console.print(f"plan for {'new ' if new else ''}lab {lab}:", markup=False)
    width = max(len(s.machine) for s in steps)
    for s in steps:
        action = s.action + (" +provision" if s.action == "reload" and s.provision else "")
        why = "; ".join(s.reasons)
        style = _ACTION_STYLE.get(s.action, "")
        console.print(
            f"  [{style}]{action:<17}[/] {s.machine:<{width}}  {why}".rstrip(),
            highlight=False,
            soft_wrap=True,
        )
    counts = {a: sum(1 for s in changes if s.action == a) for a in plans.ACTIONS if a != "keep"}
    console.print(
        "  "
        + ", ".join(f"{n} to {a}" for a, n in counts.items() if n)
        + f"; {len(steps) - len(changes)} unchanged",
        markup=False,
    )


def raw(text: str) -> None:
    """A document on stdout exactly as made (a config, an inventory, a picture)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def line(text: str) -> None:
    """One plain line on stdout (never wrapped)."""
    sys.stdout.write(text + "\n")


def asked(answers: Sequence[Any]) -> None:
    """Who answered for each lab's states (`status -v`, `ls -v`), on stderr."""
    for a in answers:
        info(f"{a.lab}: {a.note or f'states from {a.asked} itself'} ({a.elapsed_ms:.0f} ms)")


def info(text: str) -> None:
    err().print(text, markup=False)


def success(text: str) -> None:
    from rich.markup import escape

    err().print(f"[green]{escape(text)}[/]")


def warn(text: str) -> None:
    from rich.markup import escape

    err().print(f"[yellow]{escape(text)}[/]", soft_wrap=True)


def one_line(text: str) -> str:
    """`text` with what is not printable (a newline, an escape sequence,
    U+2028 from a lab file's key) written as an escape: an error quotes the
    user's input and must stay one line, and never drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def error(text: str, hint: str | None = None) -> None:
    from rich.markup import escape

    # never wrapped by labctl: a script reads the error as one line
    err().print(f"[bold red]labctl: error:[/] {escape(one_line(text))}", soft_wrap=True)
    if hint:
        err().print(f"  [dim]hint:[/] {escape(one_line(hint))}", soft_wrap=True)


class Progress:
    """Vagrant's output, one line per event, each prefixed by its machine."""

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose
        self._colors: dict[str, str] = {}

    def _color(self, machine: str) -> str:
        return self._colors.setdefault(machine, _COLORS[len(self._colors) % len(_COLORS)])

    def __call__(self, event: Event) -> None:
        from rich.markup import escape

        if (event.kind == "detail" and not self.verbose) or event.kind == "error":
            return  # errors come back once more as the command's own error
        style = {"error": "red", "warn": "yellow", "success": "green"}.get(event.kind, "")
        for raw in event.text.splitlines() or [""]:
            text = raw.strip()
            if event.machine and text.startswith(f"==> {event.machine}:"):
                text = text[len(event.machine) + 5 :].strip()
            elif event.machine and text.startswith(f"{event.machine}:"):
                text = text[len(event.machine) + 1 :].strip()
            if not text:
                continue
            body = f"[{style}]{escape(text)}[/]" if style else escape(text)
            who = (
                f"[{self._color(event.machine)}]{event.machine:>10}[/]"
                if event.machine
                else " " * 10
            )
            err().print(f"{who} | {body}", soft_wrap=True)
