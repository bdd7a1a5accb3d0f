"""`labctl jenkins ...`."""

import typer

from labctl.cli.common import JsonOpt, LabOpt, error_rows, home, report
from labctl.errors import ExitCode
from labctl.ui import console as ui

jenkins_app = typer.Typer(help="The lab's Jenkins controller and agents.", no_args_is_help=True)


@jenkins_app.command("status")
def status(ctx: typer.Context, lab: LabOpt = None, json: JsonOpt = False) -> None:
    """The controller's health and each agent online/offline (Jenkins REST API)."""
    from labctl.ops import jenkins

    st, down = jenkins.status(home(ctx), lab)
    if json:
        ui.print_json({**ui.to_plain(st), "errors": error_rows(down)})
    else:
        ui.info(f"controller: {st.detail} ({st.url})")
        if st.agents:
            state = {"STATE": lambda a: "online" if a.online else "offline"}
            ui.rows("AGENT=name, STATE, REASON", st.agents, state, {"STATE": ui.green_if("online")})
    report(down)
    if not st.healthy or any(not a.online for a in st.agents):
        raise typer.Exit(ExitCode.FAILED)


@jenkins_app.command("password")
def password(ctx: typer.Context, lab: LabOpt = None) -> None:
    """Print the admin password (nothing else ever prints it)."""
    from labctl.ops import jenkins

    print(jenkins.admin_password(home(ctx), lab))


def register(app: typer.Typer) -> None:
    app.add_typer(jenkins_app, name="jenkins")
