"""Entry point: builds the typer app from the command modules and maps errors to exit codes.

Nothing in the library imports this module; commands stay thin and call the package.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Optional

import typer

from hpforensics import __version__
from hpforensics.errors import ExitCode, HPFError
from hpforensics.textsafe import clean

app = typer.Typer(
    name="hpforensics",
    help="Forensics and audit toolkit for hotpatched Windows systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hpforensics {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(  # noqa: UP007 - typer needs Optional on 3.10
        None, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Forensics and audit toolkit for hotpatched Windows systems."""


def _load_commands() -> None:
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_load_commands()


def error(message: str) -> None:
    """One line on stderr, the way every command reports a user error."""
    typer.echo(f"hpforensics: error: {clean(message)}", err=True)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="hpforensics", standalone_mode=True)
    except HPFError as exc:
        error(str(exc))
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(int(ExitCode.OK))
