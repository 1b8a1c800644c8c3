"""`siyu contacts import|list|suppress|unsuppress|suppressions`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from worker.cli.common import console, emit_json, engine, fail
from worker.services.contacts import (
    ContactView,
    ImportReport,
    count_contacts,
    import_contacts,
    list_contacts,
)
from worker.services.suppressions import (
    SuppressionView,
    SuppressReport,
    count_suppressions,
    list_suppressions,
    suppress_contacts,
    suppress_from_file,
    unsuppress_contacts,
)

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV with an external_id column (UTF-8 by default)."),
    channel: str = typer.Option("mock", "--channel", help="Channel the contacts are reached on."),
    encoding: str | None = typer.Option(
        None,
        "--encoding",
        help="The file's text encoding, any Python codec name: gb18030 for a CSV Excel saved "
        "in China (covers GBK). Default UTF-8, with or without BOM.",
        show_default=False,
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Import the good rows and report the bad ones."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Upsert contacts from a CSV file (by channel + external_id)."""
    report = import_contacts(
        engine(), file, channel, encoding=encoding, skip_invalid=skip_invalid, dry_run=dry_run
    )
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


@app.command("suppress")
def suppress(
    external_ids: list[str] | None = typer.Argument(
        None, help="External ids of the contacts to suppress.", show_default=False
    ),
    file: Path | None = typer.Option(
        None, "--file", help="CSV with an external_id column (optional channel, reason columns)."
    ),
    channel: str | None = typer.Option(
        None, "--channel", help="Only contacts of this channel (default: every channel)."
    ),
    reason: str | None = typer.Option(
        None,
        "--reason",
        help="Why, free text (default opted_out); replaces the reason of contacts already "
        "suppressed.",
        show_default=False,
    ),
) -> None:
    """Stop messaging contacts (opt-out, complaint, block), at once, all or nothing."""
    if bool(external_ids) == (file is not None):
        fail("give either EXTERNAL_ID... or --file FILE.csv (one of them, not both)")
    if file is not None:
        report = suppress_from_file(engine(), file, channel=channel, reason=reason)
    else:
        report = suppress_contacts(engine(), external_ids or [], channel=channel, reason=reason)
    typer.echo(_suppressed_summary(report))


def _suppressed_summary(report: SuppressReport) -> str:
    noun = "contact" if report.contacts == 1 else "contacts"
    text = f"suppressed {report.contacts} {noun}"
    if report.external_ids != report.contacts:  # an id on several channels
        text += f" for {report.external_ids} external_id(s)"
    notes = []
    if report.already:
        notes.append(f"{report.already} already suppressed")
    if report.reason_updated:
        notes.append(f"reason updated on {report.reason_updated}")
    return f"{text} ({', '.join(notes)})" if notes else text


@app.command("unsuppress")
def unsuppress(
    external_ids: list[str] = typer.Argument(..., help="External ids to message again."),
    channel: str | None = typer.Option(
        None, "--channel", help="Only contacts of this channel (default: every channel)."
    ),
) -> None:
    """Lift suppressions; ids that were not suppressed are noted on stderr."""
    report = unsuppress_contacts(engine(), external_ids, channel=channel)
    if report.unknown:
        typer.echo(f"note: no such contact: {_names(report.unknown)}", err=True)
    if report.not_suppressed:
        typer.echo(f"note: not suppressed: {_names(report.not_suppressed)}", err=True)
    noun = "contact" if report.removed == 1 else "contacts"
    typer.echo(f"unsuppressed {report.removed} {noun}")


def _names(ids: list[str], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(repr(i) for i in ids[:shown]) + more


@app.command("suppressions")
def suppressions(
    limit: int = typer.Option(50, "--limit", min=1, help="Latest rows in the table (not --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print every suppression as JSON."),
) -> None:
    """Suppressed contacts with their reason and time, oldest first."""
    eng = engine()
    if as_json:
        emit_json(list_suppressions(eng))
        return
    rows = list_suppressions(eng, limit=limit)
    console.print(_suppressions_table(rows))
    total = count_suppressions(eng)
    if total > len(rows):
        typer.echo(f"showing the latest {len(rows)} of {total}; use --limit or --json for more")


def _suppressions_table(rows: list[SuppressionView]) -> Table:
    table = Table("external_id", "channel", "reason", "created_at (UTC)")
    for s in rows:
        when = s["created_at"][:19].replace("T", " ")
        table.add_row(*(Text(cell) for cell in (s["external_id"], s["channel"], s["reason"], when)))
    return table
