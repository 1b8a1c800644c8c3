"""The `siyu` command line: one typer app, one sub-app per entity.

`main()` is the one place where errors become output. A usage error (unknown command or
option, missing argument) is one `error:` line on stderr naming the closest valid name, exit 2.
A bare group (`siyu`, `siyu campaigns`) prints its help on stdout and exits 2: the help is what
the operator wants to see, and a script that ran it did nothing it meant to (`--help` exits 0).
typer >= 0.26 vendors its own click, so its errors are `typer.TyperException`s; errors from the
real click (Celery's command line, which `siyu worker` runs) are `click.ClickException`s.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
import pydantic
import typer
from typer.core import TyperGroup

from worker.cli.app import SiyuTyper
from worker.config import Settings, get_settings
from worker.errors import UserError
from worker.observability.logs import configure_logging

PROG = "siyu"

app = SiyuTyper(
    name=PROG,
    help="""Private-domain messaging: segments, templates, paced sends from many accounts.

    Every command has its own --help, with an example.

    Example:
    siyu campaigns status spring-sale
    """,
)


@functools.cache
def _register() -> None:
    """Add the sub-apps once per process, however often `main()` runs in it."""
    from worker.cli import (
        accounts,
        api,
        beat,
        campaigns,
        contacts,
        mockplatform,
        ops,
        replies,
        segments,
    )

    app.add_typer(contacts.app, name="contacts")
    app.add_typer(accounts.app, name="accounts")
    app.add_typer(segments.app, name="segments")
    app.add_typer(campaigns.app, name="campaigns")
    mockplatform.register(app)
    api.register(app)
    replies.register(app)
    ops.register(app)
    beat.register(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: errors become one line on stderr, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    _configure_logging()  # masked, in SIYU_LOG_FORMAT (issue 9 item 8, issue 11 item 3)
    _register()
    try:
        code = app(args=args, prog_name=PROG, standalone_mode=False)
    except UserError as exc:
        _refuse(str(exc), 2)
    except pydantic.ValidationError as exc:  # a SIYU_* setting no Settings can hold
        _refuse(_setting_error(exc), 2)
    except (typer.Abort, click.exceptions.Abort):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except (typer.TyperException, click.ClickException) as exc:
        _refuse_click(exc, args)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _configure_logging() -> None:
    """Logging as the settings say; with settings that do not validate, the defaults (the
    command reports the bad setting when it reads them; `--help` still works)."""
    try:
        settings = get_settings()
    except pydantic.ValidationError:
        settings = Settings.model_construct()
    configure_logging(settings)


def _setting_error(exc: pydantic.ValidationError) -> str:
    """`SIYU_CLAIM_BATCH: Input should be ...; got '0'` for the first bad setting."""
    first = exc.errors()[0]
    if not first["loc"]:  # a rule across settings: its message names them
        return str(first["msg"]).removeprefix("Value error, ")
    name = "SIYU_" + "_".join(str(part) for part in first["loc"]).upper()
    value = first.get("input")
    got = f"; got {value!r}" if isinstance(value, str | int | float) else ""
    return f"{name}: {first['msg']}{got}"


def _refuse(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


def _refuse_click(exc: typer.TyperException | click.ClickException, args: list[str]) -> NoReturn:
    """One line for an error from either click: what was wrong and the closest valid name."""
    ctx: Any = getattr(exc, "ctx", None)
    if ctx is None:
        _refuse(_sentence(exc.format_message()), exc.exit_code)
    path = _path(ctx)
    option = getattr(exc, "option_name", None)
    options = [n for p in ctx.command.get_params(ctx) for n in (*p.opts, *p.secondary_opts)]
    if option is not None and option not in options:
        where = f" for {' '.join(path)!r}" if path else ""
        _refuse(
            f"unknown option {option!r}{where}{_hint(option, options, path, full=False)}",
            exc.exit_code,
        )
    words = [arg for arg in args if not arg.startswith("-")]  # groups take no option values
    if isinstance(ctx.command, click.Group | TyperGroup) and words[: len(path)] == path:
        if len(words) == len(path):
            _show_help(exc, ctx)
            sys.exit(exc.exit_code)
        typo = words[len(path)]
        commands = [n for n in ctx.command.list_commands(ctx) if _visible(ctx, n)]
        wrong = " ".join([*path, typo])
        _refuse(f"unknown command {wrong!r}{_hint(typo, commands, path, full=True)}", exc.exit_code)
    usage = _sentence(" ".join(ctx.get_usage().split()))
    where = f"{' '.join(path)}: " if path else ""
    _refuse(f"{where}{_sentence(exc.format_message())} ({usage})", exc.exit_code)


def _path(ctx: Any) -> list[str]:
    """The command names below the program: `["campaigns", "create"]`."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return names[::-1]


def _hint(typo: str, names: Sequence[str], path: list[str], *, full: bool) -> str:
    """`; did you mean ...?` naming the closest of `names` (with its path if `full`), or where
    to look when none is close. Leading dashes are ignored: they make every option look alike."""
    bare = {name.lstrip("-"): name for name in names}
    close = difflib.get_close_matches(typo.lstrip("-"), list(bare), n=1)
    if not close:
        return f"; see {' '.join([PROG, *path, '--help'])!r}"
    best = " ".join([*path, bare[close[0]]]) if full else bare[close[0]]
    return f"; did you mean {best!r}?"


def _visible(ctx: Any, name: str) -> bool:
    command = ctx.command.get_command(ctx, name)
    return command is not None and not command.hidden


def _show_help(exc: typer.TyperException | click.ClickException, ctx: Any) -> None:
    """A bare group's help on stdout. typer prints rich help while raising the error, leaving
    its message empty; otherwise (plain help, or a group without no_args_is_help) print it."""
    if exc.format_message():
        text = ctx.get_help()
        if text:
            typer.echo(text)


def _sentence(text: str) -> str:
    """click's "Missing argument 'NAME'." in the style of our messages: lower case, no stop."""
    text = text.rstrip(".")
    return text[:1].lower() + text[1:]
