"""`labctl mysql-pair` and `labctl mysql ...`."""

from typing import Annotated

import typer

from labctl.cli.common import JsonOpt, LabOpt, complete_machine, error_rows, home, report
from labctl.errors import ExitCode

mysql_app = typer.Typer(
    help="Look inside MySQL/MariaDB replication in a lab.", no_args_is_help=True
)
VmArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Machines (default: the lab's MySQL servers).", autocompletion=complete_machine
    ),
]


def _fail_if(condition: bool) -> None:
    if condition:
        raise typer.Exit(ExitCode.FAILED)


@mysql_app.command("role")
def role(
    ctx: typer.Context, machines: VmArgs = None, lab: LabOpt = None, json: JsonOpt = False
) -> None:
    """primary, replica, dual (a replica others replicate from) or standalone, with the evidence."""
    from labctl import ui
    from labctl.ops import mysql

    outcomes = mysql.roles(home(ctx), lab, machines or [])
    rows = [o.value for o in outcomes if o.value is not None]
    if json:
        ui.print_json([*rows, *error_rows(outcomes)])
    else:
        ui.table(
            ["VM", "ROLE", "LOG_BIN", "BINLOG_FORMAT", "IO", "SQL", "SOURCE", "LAG", "REPLICAS"],
            [
                [
                    r.vm,
                    r.role,
                    r.log_bin,
                    r.binlog_format,
                    r.io_running,
                    r.sql_running,
                    r.source_host,
                    "" if r.seconds_behind is None else r.seconds_behind,
                    ", ".join(r.replicas),
                ]
                for r in rows
            ],
            styles={1: lambda v: "bold"},
        )
    report(outcomes)


@mysql_app.command("verify")
def verify(ctx: typer.Context, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """The topology the lab was rendered with against the live one, edge by edge."""
    from labctl import ui
    from labctl.ops import mysql

    edges, down = mysql.verify(home(ctx), lab)
    if json:
        ui.print_json([*edges, *error_rows(down)])
    else:
        ui.table(
            ["REPLICA", "SOURCE", "STATUS", "DETAIL"],
            [[e.replica, e.source, e.status, e.detail] for e in edges],
            styles={2: lambda v: "green" if v == "ok" else "red"},
        )
    report(down)
    _fail_if(any(e.status != "ok" for e in edges))


@mysql_app.command("status")
def status(
    ctx: typer.Context, machines: VmArgs = None, lab: LabOpt = None, json: JsonOpt = False
) -> None:
    """Replicas' threads, sources, lag and errors; sources' binlog positions. Exit 1 if broken."""
    from dataclasses import asdict

    from labctl import ui
    from labctl.ops import mysql

    found = mysql.status(home(ctx), lab, machines or [])
    if json:
        ui.print_json(
            {
                "replicas": [asdict(r) | {"broken": r.broken} for r in found.replicas],
                "sources": found.sources,
                "errors": error_rows(found.failed),
            }
        )
    else:
        ui.table(
            ["REPLICA", "SOURCE", "IO", "SQL", "LAG", "LAST_IO_ERROR", "LAST_SQL_ERROR"],
            [
                [
                    r.vm,
                    r.source_host,
                    r.io_running,
                    r.sql_running,
                    "" if r.seconds_behind is None else r.seconds_behind,
                    r.last_io_error,
                    r.last_sql_error,
                ]
                for r in found.replicas
            ],
            styles={
                2: lambda v: "green" if v == "Yes" else "red",
                3: lambda v: "green" if v == "Yes" else "red",
            },
        )
        ui.table(
            ["SOURCE", "BINLOG", "POSITION", "REPLICAS"],
            [
                [s.vm, s.binlog_file, s.binlog_position, ", ".join(s.replicas)]
                for s in found.sources
            ],
        )
    broken = [r.vm for r in found.replicas if r.broken]
    if broken:
        ui.error(f"replication broken on {', '.join(broken)}")
    report(found.failed)
    _fail_if(bool(broken))


@mysql_app.command("check")
def check(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option("--rows", help="Rows to write on the primary.")] = 1000,
    lab: LabOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write rows on the primary, wait for the replicas, compare counts and CHECKSUM TABLE."""
    from labctl import ui
    from labctl.ops import mysql

    found = mysql.check(home(ctx), lab, rows)
    ok = not found.problems and not found.failed
    if json:
        ui.print_json(
            {
                "tables": found.rows,
                "problems": found.problems,
                "errors": error_rows(found.failed),
                "ok": ok,
            }
        )
    else:
        ui.table(
            ["VM", "TABLE", "ROWS", "CHECKSUM", "SAME"],
            [[r.vm, r.table, r.rows, r.checksum, "yes" if r.same else "NO"] for r in found.rows],
            styles={4: lambda v: "green" if v == "yes" else "red"},
        )
    for p in found.problems:
        ui.error(p)
    if ok and not json:
        ui.success(f"{rows} rows written on the primary; every replica has every row")
    report(found.failed)
    _fail_if(bool(found.problems))


@mysql_app.command("add-replica")
def add_replica(
    ctx: typer.Context,
    lab: LabOpt = None,
    json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide provisioning detail.")] = False,
) -> None:
    """One more replica, from a consistent snapshot, while the primary keeps working."""
    from labctl import ui
    from labctl.ops import mysql

    result = mysql.add_replica(home(ctx), lab, ui.Progress(verbose=not quiet))
    ui.up_result(result, json)


@mysql_app.command("sql")
def sql(
    ctx: typer.Context,
    machine: Annotated[str, typer.Argument(help="The machine.", autocompletion=complete_machine)],
    statement: Annotated[str, typer.Argument(help="One SQL statement.")],
    lab: LabOpt = None,
    json: JsonOpt = False,
) -> None:
    """One statement as root in a guest (SHOW PROCESSLIST, grants, locks...); end it in \\G for the vertical layout."""
    from labctl import ui
    from labctl.ops import mysql

    rows, vertical = mysql.sql(home(ctx), lab, machine, statement)
    if json:
        ui.print_json(rows)
    elif rows and vertical:
        width = max(len(k) for r in rows for k in r)
        for n, r in enumerate(rows, start=1):
            ui.line(f"*************************** {n}. row ***************************")
            for key, value in r.items():
                ui.line(f"{key:>{width}}: {value}")
    elif rows:
        columns = list(rows[0])
        ui.table(columns, [[r.get(c, "") for c in columns] for r in rows])
    else:
        ui.info("(no rows)")


def register(app: typer.Typer) -> None:
    app.add_typer(mysql_app, name="mysql")
