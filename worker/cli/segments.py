"""`siyu segments add|show|list|delete`."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from worker.cli.common import console, emit_json, engine
from worker.services.segments import add_segment, delete_segment, list_segments, show_segment

app = typer.Typer(no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Unique segment name."),
    where: str = typer.Option(..., "--where", help='Expression, e.g. "tag = vip and city = 上海".'),
    allow_unknown: bool = typer.Option(
        False,
        "--allow-unknown",
        help="Keep a field or value that no contact has yet (noted on stderr).",
    ),
) -> None:
    """Define a segment by an expression over tags and attributes."""
    eng = engine()
    segment, notes = add_segment(eng, name, where, allow_unknown=allow_unknown)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    summary = show_segment(eng, segment.name)
    typer.echo(f"segment {summary['name']} added: {summary['members']} members now")


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Segment name."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """The expression and the current member count."""
    summary = show_segment(engine(), name)
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"{summary['name']}: {summary['where']}")
    typer.echo(f"members: {summary['members']}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Every segment with its expression and current member count."""
    summaries = list_segments(engine())
    if as_json:
        emit_json(summaries)
        return
    table = Table("name", "where", "members")
    for summary in summaries:
        table.add_row(Text(summary["name"]), Text(summary["where"]), str(summary["members"]))
    console.print(table)


@app.command("delete")
def delete(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Delete a segment that no campaign uses (live, or finished and keeping its history)."""
    delete_segment(engine(), name)
    typer.echo(f"segment {name} deleted")
