"""The Typer app: the root options and every command group."""

from typing import Annotated

import typer

app = typer.Typer(
    name="labctl",
    help="A lab of virtual machines in one command (Vagrant), and tools to look inside it.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a password must never land in a traceback
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option("--home", envvar="LABCTL_HOME", help="Folder holding the labs."),
    ] = None,
) -> None:
    ctx.obj = {"home": home}


def _register() -> None:
    from labctl.cli import ctr, jenkins, lifecycle, mysql

    lifecycle.register(app)
    ctr.register(app)
    mysql.register(app)
    jenkins.register(app)


_register()
