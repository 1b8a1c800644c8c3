"""`siyu contacts import|list`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from worker.cli.common import console, emit_json, engine
from worker.services.contacts import (
    ContactView,
    ImportReport,
    count_contacts,
    import_contacts,
    list_contacts,
)

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV with an external_id column (UTF-8)."),
    channel: str = typer.Option("mock", "--channel", help="Channel the contacts are reached on."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Import the good rows and report the bad ones."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Upsert contacts from a CSV file (by channel + external_id)."""
    report = import_contacts(engine(), file, channel, skip_invalid=skip_invalid, dry_run=dry_run)
    for error in report.rejected:  # plain lines, never wrapped: scripts grep them
        typer.echo(f"{file} line {error.line}: {error.message}", err=True)
    if as_json:
        emit_json(_report_document(file, channel, report, dry_run))
        return
    verb = "dry run, nothing written:" if dry_run else "imported"
    typer.echo(
        f"{verb} {file}: {report.created} created, {report.updated} updated, "
        f"{len(report.rejected)} rejected"
    )


def _report_document(
    file: Path, channel: str, report: ImportReport, dry_run: bool
) -> dict[str, object]:
    return {
        "file": str(file),
        "channel": channel,
        "dry_run": dry_run,
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "rejected": [{"line": e.line, "message": e.message} for e in report.rejected],
    }


@app.command("list")
def list_(
    segment: str | None = typer.Option(None, "--segment", help="Only this segment's members."),
    channel: str | None = typer.Option(None, "--channel", help="Only contacts of this channel."),
    limit: int = typer.Option(50, "--limit", min=1, help="Rows in the table (not with --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print every matching contact as JSON."),
) -> None:
    """List contacts, optionally the members of a segment."""
    eng = engine()
    if as_json:
        emit_json(list_contacts(eng, segment=segment, channel=channel))
        return
    contacts = list_contacts(eng, segment=segment, channel=channel, limit=limit)
    console.print(_table(contacts))
    total = count_contacts(eng, segment=segment, channel=channel)
    if total > len(contacts):
        typer.echo(f"showing {len(contacts)} of {total}; use --limit or --json for more")


def _table(contacts: list[ContactView]) -> Table:
    table = Table("external_id", "name", "channel", "tags", "attrs", "owner")
    for c in contacts:
        attrs = ", ".join(f"{key}={value}" for key, value in c["attrs"].items())
        cells = (c["external_id"], c["name"], c["channel"], ", ".join(c["tags"]), attrs)
        table.add_row(*(Text(cell) for cell in (*cells, c["owner"] or "")))  # no markup
    return table
