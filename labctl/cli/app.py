"""The Typer app: the root options, and every command group loaded on demand."""

import importlib
from functools import cache
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

# Commands by the module that defines them. A command's module is imported,
# and its click command built, only when that command runs (or for --help):
# `labctl ctr ps` pays for nothing of `mysql` or `up`.
COMMANDS = {
    "labctl.cli.lifecycle": (
        "init",
        "schema",
        "validate",
        "render",
        "up",
        "mysql-pair",
        "status",
        "ls",
        "ssh",
        "provision",
        "reload",
        "halt",
        "suspend",
        "resume",
        "destroy",
        "box",
        "cache",
        "doctor",
        "version",
    ),
    "labctl.cli.ctr": ("ctr", "exec"),
    "labctl.cli.mysql": ("mysql",),
    "labctl.cli.link": ("link",),
    "labctl.cli.jenkins": ("jenkins",),
    "labctl.cli.handoff": ("ssh-config", "inventory", "graph"),
}


@cache
def commands_of(module: str) -> dict[str, Any]:
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    return dict(typer.main.get_group(sub).commands)


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return [name for names in COMMANDS.values() for name in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        for module, names in COMMANDS.items():
            if cmd_name in names:
                return commands_of(module).get(cmd_name)
        return None


app = typer.Typer(
    name="labctl",
    cls=LazyGroup,
    help="A lab of virtual machines in one command (Vagrant), and tools to look inside it.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a password must never land in a traceback
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _show_version(asked: bool) -> None:
    if asked:
        from labctl import __version__
        from labctl.ui import console as ui

        ui.line(f"labctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        str | None, typer.Option("--home", envvar="LABCTL_HOME", help="Folder holding the labs.")
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,  # before the missing command is noticed
            help="Print labctl's version and exit (`labctl version`: the providers' too).",
        ),
    ] = False,
) -> None:
    ctx.obj = {"home": home}
