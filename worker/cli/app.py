"""The typer classes every `siyu` command is built with: help that reads like the contract.

typer (0.29) shows each parameter's Python type in `--help` (`--json <bool>`, `--tz <str>`),
which makes a flag look as if it took a value. Here a flag shows nothing after its name, a
value shows its metavar (`--limit N`), and a parameter without one is named after its option
or argument in capitals, as argparse does (`--segment SEGMENT`, `{NAME}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _plain(params: Iterable[Any]) -> None:
    """Give every parameter without a metavar one: empty for a flag, else its name."""
    for param in params:
        if param.metavar is not None:
            continue
        if isinstance(param, TyperOption):
            long = max(param.opts, key=len).lstrip("-")
            param.metavar = "" if param.is_flag else long.replace("-", "_").upper()
        elif isinstance(param, TyperArgument) and param.name:
            param.metavar = param.name.upper()


class SiyuCommand(TyperCommand):
    """A command whose `--help` names values instead of Python types."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _plain([option] if option is not None else [])
        return option


class SiyuGroup(TyperGroup):
    """A group (`siyu`, `siyu campaigns`) whose `--help` flag reads as a flag."""

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _plain([option] if option is not None else [])
        return option


class SiyuTyper(typer.Typer):
    """`typer.Typer` whose groups and commands are the classes above.

    A bare group prints its help (see `worker.cli.main`); rich tracebacks are off because a
    user error is one line on stderr, and shell completion is not offered.
    """

    def __init__(self, *, help: str, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(cls=SiyuGroup, help=help, **kwargs)

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls or SiyuCommand, **kwargs)
