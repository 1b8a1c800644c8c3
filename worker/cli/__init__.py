"""The `siyu` command line: one typer app, one sub-app per entity."""

from __future__ import annotations

import functools
import sys

import click
import typer

from worker.errors import UserError

app = typer.Typer(
    name="siyu",
    help="Private-domain messaging automation: segments, templates, paced multi-account sends.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@functools.cache
def _register() -> None:
    """Add the sub-apps once per process, however often `main()` runs in it."""
    from worker.cli import accounts, campaigns, contacts, mockplatform, ops, segments

    app.add_typer(contacts.app, name="contacts", help="Import, list and suppress contacts.")
    app.add_typer(accounts.app, name="accounts", help="Sender accounts and their health.")
    app.add_typer(segments.app, name="segments", help="Audience segments.")
    app.add_typer(campaigns.app, name="campaigns", help="Create, run and watch campaigns.")
    mockplatform.register(app)
    ops.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr, never a traceback."""
    _register()
    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
