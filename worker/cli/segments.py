"""`siyu segments add|show|list|delete`."""

from __future__ import annotations

import typer

from worker.cli.app import SiyuTyper
from worker.cli.common import emit_json, engine
from worker.cli.tables import Col, print_table
from worker.services.segments import add_segment, delete_segment, list_segments, show_segment

app = SiyuTyper(
    help="""Audience segments.

    Example:
    siyu segments add vip --where "tag = vip and city = 上海"
    """
)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Unique segment name."),
    where: str = typer.Option(
        ..., "--where", metavar="EXPR", help='Expression, e.g. "tag = vip and city = 上海".'
    ),
    allow_unknown: bool = typer.Option(
        False,
        "--allow-unknown",
        help="Keep a field or value that no contact has yet (noted on stderr).",
    ),
) -> None:
    """Define a segment by an expression over tags and attributes.

    Examples:
    siyu segments add vip --where "tag = vip and city = 上海"
    siyu segments add recent --where "signup_date >= 2026-10-01"
    """
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
    """The expression and the current member count.

    Example:
    siyu segments show vip
    """
    summary = show_segment(engine(), name)
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"{summary['name']}: {summary['where']}")
    typer.echo(f"members: {summary['members']}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Every segment with its expression and current member count.

    Example:
    siyu segments list
    """
    summaries = list_segments(engine())
    if as_json:
        emit_json(summaries)
        return
    print_table(
        [Col("name", "name"), Col("where"), Col("members", "number")],
        [(s["name"], s["where"], str(s["members"])) for s in summaries],
    )


@app.command("delete")
def delete(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Delete a segment that no campaign uses (live, or finished and keeping its history).

    Example:
    siyu segments delete vip
    """
    delete_segment(engine(), name)
    typer.echo(f"segment {name} deleted")
