"""`labctl mysql-pair` and `labctl mysql ...`."""

import importlib
from collections.abc import Callable
from typing import Annotated, Any

import typer

from labctl.cli.common import (
    Command,
    JsonOpt,
    LabOpt,
    QuietOpt,
    complete_machine,
    error_rows,
    home,
    listing,
    report,
)
from labctl.errors import ExitCode
from labctl.ui import console as ui
from labctl.ui import mysql as mysql_ui

mysql_app = typer.Typer(
    help="Look inside MySQL/MariaDB replication in a lab.", no_args_is_help=True
)
VmArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Machines (default: the lab's MySQL servers).", autocompletion=complete_machine
    ),
]


ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="The replica to promote (default: the one that has applied the most).",
        autocompletion=complete_machine,
    ),
]
StepsOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide each step.")]


def _progress(quiet: bool, json: bool) -> Any:
    return ui.Progress(verbose=not quiet and not json)


def _fail_if(condition: bool) -> None:
    if condition:
        raise typer.Exit(ExitCode.FAILED)


@mysql_app.command("role")
def role(
    ctx: typer.Context, machines: VmArgs = None, lab: LabOpt = None, json: JsonOpt = False
) -> None:
    """primary, replica, dual (a replica others replicate from) or standalone, with the evidence."""
    from labctl.ops.mysql import observe as mysql

    listing(
        mysql.roles(home(ctx), lab, machines or []),
        "VM, ROLE, LOG_BIN, BINLOG_FORMAT, IO=io_running, SQL=sql_running, SOURCE=source_host, "
        "LAG=seconds_behind, REPLICAS",
        json,
        styles={"ROLE": lambda v: "bold"},
    )


@mysql_app.command("info")
def info(
    ctx: typer.Context,
    machines: VmArgs = None,
    lab: LabOpt = None,
    json: JsonOpt = False,
    margin: Annotated[
        int,
        typer.Option(
            "--retention-margin",
            min=0,
            help="Warn of a replica whose binlog its source purges within this many seconds.",
        ),
    ] = 3600,
) -> None:
    """Each server's check-up: role, writes, the \\s figures, binlog and retention, GTIDs,
    replication both ways, accounts, engines. Exit 1 on an error (a duplicate server_id)."""
    from labctl.ops.mysql import info as mysql

    found = mysql.info(home(ctx), lab, machines or [], margin)
    servers = [o.value for o in found if o.value is not None]
    if json:
        ui.print_json([*servers, *error_rows(found)])
    else:
        mysql_ui.server_info(servers)
    report(found)
    _fail_if(any(s.problems for s in servers))


@mysql_app.command("verify")
def verify(ctx: typer.Context, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """The topology the lab was rendered with against the live one, edge by edge."""
    from labctl.ops.mysql import observe as mysql

    edges, down = mysql.verify(home(ctx), lab)
    listing(
        down, "REPLICA, SOURCE, STATUS, DETAIL", json, edges, styles={"STATUS": ui.green_if("ok")}
    )
    _fail_if(any(e.status != "ok" for e in edges))


@mysql_app.command("status")
def status(
    ctx: typer.Context, machines: VmArgs = None, lab: LabOpt = None, json: JsonOpt = False
) -> None:
    """Replicas' threads, sources, lag and errors; sources' binlog positions. Exit 1 if broken."""
    from dataclasses import asdict

    from labctl.ops.mysql import observe as mysql

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
        ui.rows(
            "REPLICA=vm, SOURCE=source_host, IO=io_running, SQL=sql_running, LAG=seconds_behind, "
            "LAST_IO_ERROR, LAST_SQL_ERROR",
            found.replicas,
            styles={"IO": ui.green_if("Yes"), "SQL": ui.green_if("Yes")},
        )
        ui.rows("SOURCE=vm, BINLOG=binlog_file, POSITION=binlog_position, REPLICAS", found.sources)
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
    from labctl.ops.mysql import observe as mysql

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
        same = {"SAME": lambda r: "yes" if r.same else "NO"}
        ui.rows("VM, TABLE, ROWS, CHECKSUM, SAME", found.rows, same, {"SAME": ui.green_if("yes")})
    for p in found.problems:
        ui.error(p)
    if ok and not json:
        ui.success(f"{rows} rows written on the primary; every replica has every row")
    report(found.failed)
    _fail_if(bool(found.problems))


@mysql_app.command("add-replica")
def add_replica(
    ctx: typer.Context, lab: LabOpt = None, json: JsonOpt = False, quiet: QuietOpt = False
) -> None:
    """One more replica, from a consistent snapshot, while the primary keeps working."""
    from labctl.ops.mysql import observe as mysql

    result = mysql.add_replica(home(ctx), lab, ui.Progress(verbose=not quiet))
    ui.up_result(result, json)


def _move(say: Callable[[Any], None]) -> Command:
    """A move of the primary: the function of ops.mysql that has the name of `say`,
    the command's help its docstring; then its result as JSON, or what `say` says."""
    name = say.__name__

    def command(
        ctx: typer.Context,
        to: ToOpt = None,
        lab: LabOpt = None,
        json: JsonOpt = False,
        quiet: StepsOpt = False,
    ) -> None:
        move = getattr(importlib.import_module(f"labctl.ops.mysql.{name}"), name)
        done = move(home(ctx), lab, to, _progress(quiet, json))
        ui.print_json(done) if json else say(done)

    return mysql_app.command(name, help=say.__doc__)(command)


@_move
def switchover(done: Any) -> None:
    """Planned: the primary's role handed to a replica, nothing lost; the old primary replicates from it."""
    mysql_ui.switched(done)


@_move
def failover(done: Any) -> None:
    """The primary is gone: promote the most advanced replica, repoint the rest, say what may be lost."""
    mysql_ui.failed_over(done)


@mysql_app.command("rejoin")
def rejoin(
    ctx: typer.Context,
    machine: Annotated[
        str, typer.Argument(help="The stale (failed) primary.", autocompletion=complete_machine)
    ],
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="From a snapshot even if nothing diverged.")
    ] = False,
    lab: LabOpt = None,
    json: JsonOpt = False,
    quiet: StepsOpt = False,
) -> None:
    """A failed primary back as a replica: by GTID, or rebuilt from a snapshot when its history diverged."""
    from labctl.ops.mysql import rejoin as op

    done = op.rejoin(home(ctx), lab, machine, rebuild, _progress(quiet, json))
    ui.print_json(done) if json else mysql_ui.rejoined(done)


@mysql_app.command("drill")
def drill(
    ctx: typer.Context,
    fault: Annotated[
        str,
        typer.Option("--fault", help="halt (the machine), kill-mysqld (kill -9), cut (its links)."),
    ] = "halt",
    rate: Annotated[float, typer.Option("--rate", help="Rows a second the writer inserts.")] = 200,
    semi_sync: Annotated[
        bool, typer.Option("--semi-sync", help="Semi-synchronous replication (AFTER_SYNC) first.")
    ] = False,
    before: Annotated[
        float, typer.Option("--before", help="Seconds of writes before the fault.")
    ] = 3,
    after: Annotated[
        float, typer.Option("--after", help="Seconds of writes after the failover.")
    ] = 3,
    lab: LabOpt = None,
    json: JsonOpt = False,
    quiet: StepsOpt = False,
) -> None:
    """Rehearse a failover under load: write, break the primary, fail over, count what was lost."""
    from labctl.ops.mysql import drill as ops_drill

    report = ops_drill.drill(
        home(ctx), lab, fault, rate, semi_sync, before, after, _progress(quiet, json)
    )
    ui.print_json(report) if json else mysql_ui.drilled(report)
    # the numbers are the drill's result; a replica that differs, or a loss
    # that semi-synchronous replication promised away, is a failure
    if not all(report.replicas.values()) or (report.semi_sync and report.lost):
        raise typer.Exit(ExitCode.FAILED)


@mysql_app.command("sql")
def sql(
    ctx: typer.Context,
    machine: Annotated[str, typer.Argument(help="The machine.", autocompletion=complete_machine)],
    statement: Annotated[str, typer.Argument(help="One SQL statement.")],
    lab: LabOpt = None,
    json: JsonOpt = False,
) -> None:
    """One statement as root in a guest (SHOW PROCESSLIST, grants, locks...); end it in \\G for the vertical layout."""
    from labctl.ops.mysql import observe as mysql

    rows, vertical = mysql.sql(home(ctx), lab, machine, statement)
    if json:
        ui.print_json(rows)
    elif rows and vertical:
        mysql_ui.vertical(rows)
    elif rows:
        columns = list(rows[0])
        ui.table(columns, [[r.get(c, "") for c in columns] for r in rows])
    else:
        ui.info("(no rows)")


def register(app: typer.Typer) -> None:
    app.add_typer(mysql_app, name="mysql")
