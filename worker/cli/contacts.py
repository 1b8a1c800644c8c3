"""`siyu contacts import|list|suppress|unsuppress|suppressions`."""

from __future__ import annotations

from pathlib import Path

import typer

from worker.campaigns.timeparse import local_text, zone
from worker.cli.app import SiyuTyper
from worker.cli.common import emit_json, engine, fail
from worker.cli.tables import Col, print_table
from worker.config import get_settings
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

app = SiyuTyper(
    help="""Import, list and suppress contacts.

    Example:
    siyu contacts import contacts.csv --channel mock
    """
)


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., metavar="FILE.csv", help="CSV with an external_id column (UTF-8 by default)."
    ),
    channel: str = typer.Option("mock", "--channel", help="Channel the contacts are reached on."),
    encoding: str | None = typer.Option(
        None,
        "--encoding",
        metavar="CODEC",
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
    """Upsert contacts from a CSV file (by channel + external_id).

    Examples:
    siyu contacts import contacts.csv --channel mock --dry-run
    siyu contacts import excel-export.csv --encoding gb18030 --skip-invalid
    """
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
    limit: int = typer.Option(
        50, "--limit", min=1, metavar="N", help="Rows in the table (not with --json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every matching contact as JSON."),
) -> None:
    """List contacts, optionally the members of a segment.

    Example:
    siyu contacts list --segment vip --limit 20
    """
    eng = engine()
    if as_json:
        emit_json(list_contacts(eng, segment=segment, channel=channel))
        return
    contacts = list_contacts(eng, segment=segment, channel=channel, limit=limit)
    _table(contacts)
    total = count_contacts(eng, segment=segment, channel=channel)
    if total > len(contacts):
        typer.echo(f"showing {len(contacts)} of {total}; use --limit or --json for more")


def _table(contacts: list[ContactView]) -> None:
    columns = [
        Col("external_id\nname", "name"),
        Col("channel"),
        Col("tags"),
        Col("attrs"),
        Col("owner", "name"),
    ]
    print_table(columns, [_contact_cells(c) for c in contacts])


def _contact_cells(c: ContactView) -> tuple[str, ...]:
    who = f"{c['external_id']}\n{c['name']}" if c["name"] else c["external_id"]
    attrs = ", ".join(f"{key}={value}" for key, value in c["attrs"].items())
    return who, c["channel"], ", ".join(c["tags"]), attrs, c["owner"] or ""


@app.command("suppress")
def suppress(
    external_ids: list[str] | None = typer.Argument(
        None,
        metavar="EXTERNAL_ID",
        help="External ids of the contacts to suppress.",
        show_default=False,
    ),
    file: Path | None = typer.Option(
        None,
        "--file",
        metavar="FILE.csv",
        help="CSV with an external_id column (optional channel, reason columns).",
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
    """Stop messaging contacts (opt-out, complaint, block), at once, all or nothing.

    Examples:
    siyu contacts suppress u000123 u000456 --reason complaint
    siyu contacts suppress --file opted-out.csv
    """
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
    external_ids: list[str] = typer.Argument(
        ..., metavar="EXTERNAL_ID", help="External ids to message again."
    ),
    channel: str | None = typer.Option(
        None, "--channel", help="Only contacts of this channel (default: every channel)."
    ),
) -> None:
    """Lift suppressions; ids that were not suppressed are noted on stderr.

    Example:
    siyu contacts unsuppress u000123 --channel mock
    """
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
    limit: int = typer.Option(
        50, "--limit", min=1, metavar="N", help="Latest rows in the table (not --json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every suppression as JSON."),
) -> None:
    """Suppressed contacts with their reason and time, oldest first.

    Times are in the installation's time zone (SIYU_TZ), with the offset.

    Example:
    siyu contacts suppressions --limit 20
    """
    eng = engine()
    if as_json:
        emit_json(list_suppressions(eng))
        return
    rows = list_suppressions(eng, limit=limit)
    _suppressions_table(rows)
    total = count_suppressions(eng)
    if total > len(rows):
        typer.echo(f"showing the latest {len(rows)} of {total}; use --limit or --json for more")


def _suppressions_table(rows: list[SuppressionView]) -> None:
    tz = zone(get_settings().tz, field="SIYU_TZ")
    print_table(
        [Col("external_id", "name"), Col("channel"), Col("reason"), Col("suppressed at")],
        [
            (s["external_id"], s["channel"], s["reason"], local_text(s["created_at"], tz))
            for s in rows
        ],
    )
