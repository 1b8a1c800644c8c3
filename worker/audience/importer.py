"""Import a contacts CSV: validate every row, then upsert in chunks inside one transaction.

Rows stream from the file (`worker.audience.rows`), so memory stays flat for large files; a
refused file leaves the database untouched because nothing commits until the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, String, Table, func, literal, select

from worker.audience.csvfile import Undecodable, check_encoding
from worker.audience.rows import ContactRow, Owners, RowError, read_contacts
from worker.audience.upsert import chunk_parameters, upsert_statement
from worker.channels.registry import channel_class
from worker.errors import UserError
from worker.store import tables
from worker.store.models import utcnow

__all__ = ["ImportReport", "InvalidRows", "RowError", "import_contacts"]

CHUNK_ROWS = 1000  # rows per upsert statement (one JSON document each)
SHOWN_REASONS = 3
CONTACTS: Table = tables.contacts
ACCOUNTS: Table = tables.accounts


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: list[RowError] = field(default_factory=list)


class InvalidRows(UserError):
    """A file refused because of bad rows (no `skip_invalid`); `report.rejected` has them all."""

    def __init__(self, path: Path, report: ImportReport) -> None:
        self.path = path
        self.report = report
        bad = report.rejected
        reasons = "; ".join(str(error) for error in bad[:SHOWN_REASONS])
        more = f"; and {len(bad) - SHOWN_REASONS} more" if len(bad) > SHOWN_REASONS else ""
        super().__init__(
            f"{path}: {len(bad)} invalid row(s), nothing imported: {reasons}{more} "
            "(fix them, or pass --skip-invalid to import the other rows)"
        )


def import_contacts(
    engine: Engine,
    path: Path,
    channel: str,
    *,
    encoding: str | None = None,
    skip_invalid: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Upsert the contacts of a CSV file by (channel, external_id), all or nothing.

    Without `skip_invalid` any bad row raises `InvalidRows` and nothing is written; with it the
    good rows are imported and the bad ones reported. `dry_run` does all of it, then rolls back.
    `encoding` is any Python text codec (None: UTF-8); a byte it cannot decode refuses the whole
    file, even with `skip_invalid`: the rows after it can't be trusted.
    """
    channel_class(channel)
    if encoding is not None:
        check_encoding(encoding)
    upsert = upsert_statement(engine.dialect.name)
    report = ImportReport()
    now = utcnow()
    with engine.connect() as conn, conn.begin() as transaction:
        before = _lock_and_count(conn, channel)
        rows = _advised(read_contacts(path, _owners(conn, channel), encoding), encoding)
        for chunk in _chunks(rows, CHUNK_ROWS):
            good = _tally(report, chunk)
            if good and (skip_invalid or not report.rejected):
                conn.execute(upsert, chunk_parameters(channel, good, now))
        if report.rejected and not skip_invalid:
            raise InvalidRows(path, report)  # rolls the transaction back
        report.created = _lock_and_count(conn, channel) - before
        report.updated = report.rows - len(report.rejected) - report.created
        if dry_run:
            transaction.rollback()
    return report


def _advised(
    rows: Iterator[ContactRow | RowError], encoding: str | None
) -> Iterator[ContactRow | RowError]:
    """`rows`, with an undecodable file's error saying which --encoding or Excel option helps."""
    try:
        yield from rows
    except Undecodable as exc:
        raise UserError(f"{exc.fact}; {_encoding_advice(encoding)}") from exc


def _encoding_advice(encoding: str | None) -> str:
    excel = 'save it from Excel as "CSV UTF-8 (Comma delimited)"'
    if encoding is None:
        return f"if Excel saved it in China, import it with --encoding gb18030, or {excel}"
    return (
        f"check --encoding ({encoding} was given; gb18030 covers GBK and GB2312), or {excel} "
        "and import it without --encoding"
    )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _tally(report: ImportReport, chunk: list[ContactRow | RowError]) -> list[ContactRow]:
    """Count the rows of a chunk, record its rejections, return its valid rows."""
    report.rows += len(chunk)
    good: list[ContactRow] = []
    for item in chunk:
        if isinstance(item, RowError):
            report.rejected.append(item)
        else:
            good.append(item)
    return good


def _owners(conn: Connection, channel: str) -> Owners:
    ids: dict[str, int] = {}
    elsewhere: dict[str, str] = {}
    query = select(ACCOUNTS.c.id, ACCOUNTS.c.name, ACCOUNTS.c.channel)
    for account_id, name, account_channel in conn.execute(query):
        if account_channel == channel:
            ids[name] = account_id
        else:
            elsewhere[name] = account_channel
    return Owners(channel, ids, elsewhere)


def _lock_and_count(conn: Connection, channel: str) -> int:
    """The channel's contact count, with concurrent imports of it held off (PostgreSQL).

    SQLite already admits one writer at a time; the lock also keeps two imports of overlapping
    rows from deadlocking each other on PostgreSQL.
    """
    if conn.dialect.name == "postgresql":
        key = literal(f"siyu.import:{channel}", String())
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
    query = select(func.count()).select_from(CONTACTS).where(CONTACTS.c.channel == channel)
    return int(conn.execute(query).scalar_one())
