"""Helpers shared by the CLI command modules: output, JSON, the engine."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import Engine

console = Console()
err_console = Console(stderr=True)


def say(line: str) -> None:
    """Print text for a person as it is: never wrapped or cut by us (a long URL stays whole
    for the terminal to show), and a `[` in a name or a message is not markup."""
    console.print(Text(line), soft_wrap=True)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (the `--json` contract)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str, indent=2) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a one-line error on stderr and a non-zero exit status."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def engine() -> Engine:
    """The configured database engine, with the schema created if missing."""
    from worker.store.db import get_engine, init_db

    eng = get_engine()
    init_db(eng)
    return eng
