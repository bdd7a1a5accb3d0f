"""The `labctl` command: parse, call ops, print. The only package that knows
typer, and the one place where errors become messages and exit codes.

This module stays light (the Typer app lives in labctl.cli.app)."""

import os
import sys
import tempfile
import traceback
from collections.abc import Callable

from labctl.errors import ExitCode, Interrupted, LabctlError


def _internal_error(exc: BaseException) -> int:
    fd, path = tempfile.mkstemp(prefix="labctl-crash-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        # The traceback only: no locals, so no secret reaches the file.
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=fh)
    from labctl.ui import console as ui

    ui.error(f"internal error: {type(exc).__name__}: {exc}", hint=f"traceback written to {path}")
    return ExitCode.FAILED


def _parser_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(aborts, usage errors) of the command-line parser. typer up to 0.25 runs
    on click, from 0.26 on its own copy of it (typer._click), and labctl depends
    on typer only: click's base of usage errors is taken from the module that
    defines typer's own BadParameter, whichever that is (`import click` fails
    where typer does not bring click in, and would be the wrong click where
    something else does)."""
    import typer

    errors = sys.modules[typer.BadParameter.__module__]
    return (typer.Abort,), (errors.ClickException,)


def _usage_line(exc: BaseException) -> str:
    """A usage error (unknown option, missing argument, bad number) as one
    line like every other error, naming the command's --help; not click's
    usage block."""
    format_message = getattr(exc, "format_message", None)
    text = " ".join((format_message() if format_message else str(exc)).split())
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") if ctx is not None else ""
    return f"{text} (see: {path} --help)" if path else text


def run_command(command: Callable[[], object]) -> object:
    """The command under one Ctrl-C handler (labctl.local.process): whatever fails
    because Ctrl-C closed it under its feet (an SSH connection) is the
    interrupt, exit 130, not that failure."""
    from labctl.local import process

    with process.interruptible():
        try:
            code = command()
        except Exception as exc:
            if process.interrupted() and not isinstance(exc, Interrupted):
                raise Interrupted("interrupted; the connections to the guests were closed") from exc
            raise
        if process.interrupted() and code != ExitCode.INTERRUPTED:
            raise Interrupted("interrupted; what had started was stopped")
        return code


def entry() -> None:
    """The `labctl` program: main(), and after a Ctrl-C an exit at once with
    130. Python's own finalization would run what the interrupt left pending
    and, now and then, die by SIGINT instead (a parent sees -2, not 130)."""
    try:
        main()
    except SystemExit as done:
        if done.code == ExitCode.INTERRUPTED:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(ExitCode.INTERRUPTED)
        raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, map every failure to one message and exit code."""
    from typer.main import get_command

    from labctl.cli.app import app

    aborts, usage = _parser_errors()
    command = get_command(app)
    try:
        code = run_command(
            lambda: command.main(args=argv, prog_name="labctl", standalone_mode=False)
        )
        if code == ExitCode.INTERRUPTED:  # typer's own word for a KeyboardInterrupt
            sys.stderr.write("labctl: interrupted\n")
        sys.exit(code if isinstance(code, int) else 0)
    except LabctlError as exc:
        from labctl.ui import console as ui

        ui.error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, *aborts):  # type: ignore[misc]
        sys.stderr.write("\nlabctl: interrupted\n")
        sys.exit(ExitCode.INTERRUPTED)
    except usage as exc:
        from labctl.ui import console as ui

        ui.error(_usage_line(exc))
        sys.exit(getattr(exc, "exit_code", ExitCode.USAGE))
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except Exception as exc:
        sys.exit(_internal_error(exc))
