"""Suppressions: contacts that must not be messaged again, addressed by external_id.

Every change is one transaction, committed before the function returns, so materialisation
and each lane's last look before a send see it at once. All or nothing: an id (or file row)
that names no contact refuses the whole request and writes nothing.

Reasons: a contact suppressed again keeps its first `created_at`; an explicitly given reason
replaces the stored one (the latest reason is what operators see), no reason keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypedDict, TypeVar

from sqlalchemy import Connection, Engine, Table, func, select

from worker.audience.suppression_rows import Request, read_requests
from worker.campaigns.timeparse import iso_utc
from worker.channels.registry import channel_class
from worker.errors import UserError
from worker.store import tables
from worker.store.db import dialect_insert, for_writing
from worker.store.models import utcnow

__all__ = [
    "Refused",
    "Request",
    "SuppressReport",
    "SuppressionView",
    "UnsuppressReport",
    "count_suppressions",
    "list_suppressions",
    "suppress_contacts",
    "suppress_from_file",
    "unsuppress_contacts",
]

T = TypeVar("T")

DEFAULT_REASON = "opted_out"
CHUNK = 500  # ids per IN list / rows per INSERT: well under every dialect's parameter limit
SHOWN = 10  # problems named in an error message before "and N more"
CONTACTS: Table = tables.contacts
SUPPRESSIONS: Table = tables.suppressions
CT, S = CONTACTS.c, SUPPRESSIONS.c


@dataclass(frozen=True, slots=True)
class SuppressReport:
    """What a suppress did: `contacts` are suppressed now, `already` of them were before."""

    external_ids: int
    contacts: int
    already: int
    reason_updated: int


@dataclass(frozen=True, slots=True)
class UnsuppressReport:
    """What an unsuppress did, and the ids it could not act on."""

    removed: int
    not_suppressed: list[str]
    unknown: list[str]


class SuppressionView(TypedDict):
    """A suppression as `contacts suppressions --json` prints it."""

    external_id: str
    channel: str
    reason: str
    created_at: str


class Refused(UserError):
    """A request refused whole; `problems` lists every reason, the message the first few."""

    def __init__(self, summary: str, problems: list[str], separator: str = ", ") -> None:
        self.problems = problems
        shown = separator.join(problems[:SHOWN])
        more = f"{separator}and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        super().__init__(f"{summary}: {shown}{more}")


def suppress_contacts(
    engine: Engine,
    external_ids: Sequence[str],
    *,
    channel: str | None = None,
    reason: str | None = None,
) -> SuppressReport:
    """Suppress the contacts with these external_ids (on `channel`, else on every channel)."""
    reason = _checked_reason(reason)
    _check_channel(channel)
    ids = _clean_ids(external_ids)
    requests = [Request(external_id, channel, reason) for external_id in ids]
    with for_writing(engine).begin() as conn:
        matches = _resolve(conn, requests)
        unknown = [repr(r.external_id) for r in requests if not matches[r]]
        if unknown:
            raise Refused(_unknown_summary(unknown, channel, "nothing suppressed"), unknown)
        return _suppress(conn, requests, matches)


def suppress_from_file(
    engine: Engine, path: Path, *, channel: str | None = None, reason: str | None = None
) -> SuppressReport:
    """Suppress the contacts a CSV names: `external_id`, optional `channel` and `reason` columns.

    A cell overrides the option; the options fill empty cells and missing columns. Any bad row
    (malformed, empty id, unknown channel, no such contact) refuses the file with its line.
    """
    reason = _checked_reason(reason)
    _check_channel(channel)
    requests, problems = read_requests(path, channel, reason)
    with for_writing(engine).begin() as conn:
        matches = _resolve(conn, requests)
        problems += [(r.line or 0, _no_contact(r)) for r in requests if not matches[r]]
        if problems:
            lines = [f"line {line}: {message}" for line, message in sorted(problems)]
            summary = f"{path}: {len(lines)} row(s) refused, nothing suppressed"
            raise Refused(summary, lines, separator="; ")
        return _suppress(conn, requests, matches)


def unsuppress_contacts(
    engine: Engine, external_ids: Sequence[str], *, channel: str | None = None
) -> UnsuppressReport:
    """Lift the suppressions of these ids; refused only when no id names any contact."""
    _check_channel(channel)
    requests = [Request(external_id, channel) for external_id in _clean_ids(external_ids)]
    with for_writing(engine).begin() as conn:
        matches = _resolve(conn, requests)
        unknown = [r.external_id for r in requests if not matches[r]]
        if len(unknown) == len(requests):
            named = [repr(i) for i in unknown]
            raise Refused(_unknown_summary(named, channel, "nothing unsuppressed"), named)
        removed: set[int] = set()
        for chunk in _chunks(sorted({cid for ids in matches.values() for cid in ids})):
            delete = SUPPRESSIONS.delete().where(S.contact_id.in_(chunk)).returning(S.contact_id)
            removed.update(conn.execute(delete).scalars())
    not_suppressed = [r.external_id for r in requests if matches[r] and not removed & matches[r]]
    return UnsuppressReport(len(removed), not_suppressed, unknown)


def list_suppressions(engine: Engine, *, limit: int | None = None) -> list[SuppressionView]:
    """Every suppression, oldest first; with `limit`, only the latest `limit` of them."""
    latest = (
        select(CT.external_id, CT.channel, S.reason, S.created_at, S.id)
        .join(CONTACTS, CT.id == S.contact_id)
        .order_by(S.created_at.desc(), S.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(latest).all()
    return [
        SuppressionView(external_id=r[0], channel=r[1], reason=r[2], created_at=iso_utc(r[3]) or "")
        for r in reversed(rows)
    ]


def count_suppressions(engine: Engine) -> int:
    """How many contacts are suppressed."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SUPPRESSIONS)).scalar_one())


def _checked_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if not reason.strip():
        raise UserError(f"the reason must not be empty (leave it out for {DEFAULT_REASON!r})")
    return reason.strip()


def _check_channel(channel: str | None) -> None:
    if channel is not None:
        channel_class(channel)  # an unknown name fails with the known ones


def _clean_ids(external_ids: Iterable[str]) -> list[str]:
    ids = [external_id.strip() for external_id in external_ids]
    if not ids:
        raise UserError("no external_id given")
    if not all(ids):
        raise UserError("an empty external_id was given")
    return list(dict.fromkeys(ids))


def _unknown_summary(unknown: list[str], channel: str | None, outcome: str) -> str:
    where = f" of channel {channel!r}" if channel else ""
    return f"{len(unknown)} external_id(s) match no contact{where}, {outcome}"


def _no_contact(request: Request) -> str:
    where = f" of channel {request.channel!r}" if request.channel else ""
    return f"no contact{where} has external_id {request.external_id!r}"


def _chunks(items: Iterable[T]) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


def _resolve(conn: Connection, requests: Sequence[Request]) -> dict[Request, set[int]]:
    """The contact ids each request names: its id on its channel, or on every channel.

    Contacts are indexed by (channel, external_id) only, so the lookup names the channels too.
    """
    channels = list(conn.execute(select(CT.channel).distinct()).scalars())
    found: dict[str, dict[str, int]] = {}  # external_id -> channel -> contact id
    for chunk in _chunks(sorted({r.external_id for r in requests})):
        query = select(CT.external_id, CT.channel, CT.id).where(
            CT.channel.in_(channels), CT.external_id.in_(chunk)
        )
        for external_id, channel, contact_id in conn.execute(query):
            found.setdefault(external_id, {})[channel] = contact_id
    matches: dict[Request, set[int]] = {}
    for r in requests:
        on = found.get(r.external_id, {})
        if r.channel is None:
            matches[r] = set(on.values())
        else:
            matches[r] = {on[r.channel]} if r.channel in on else set()
    return matches


def _suppress(
    conn: Connection, requests: Sequence[Request], matches: dict[Request, set[int]]
) -> SuppressReport:
    """Insert the missing suppressions, then apply explicit reasons to the existing ones."""
    wanted: dict[int, str | None] = {}  # contact id -> explicit reason; a later one wins
    for r in requests:
        for contact_id in matches[r]:
            if r.reason is not None or contact_id not in wanted:
                wanted[contact_id] = r.reason
    added = _insert_missing(conn, wanted)
    updated = _update_reasons(conn, {c: r for c, r in wanted.items() if c not in added})
    external_ids = len({r.external_id for r in requests})
    return SuppressReport(external_ids, len(wanted), len(wanted) - len(added), updated)


def _insert_missing(conn: Connection, wanted: dict[int, str | None]) -> set[int]:
    """Insert a suppression for each contact that has none; returns the contacts inserted.

    One cached statement run as an executemany: SQLAlchemy batches it into multi-row
    `INSERT ... ON CONFLICT DO NOTHING RETURNING`, which returns only the rows it inserted.
    """
    insert = dialect_insert(conn)
    stmt = insert(SUPPRESSIONS).on_conflict_do_nothing(index_elements=["contact_id"])
    now = utcnow()
    added: set[int] = set()
    for chunk in _chunks(sorted(wanted)):
        rows = [
            {"contact_id": c, "reason": wanted[c] or DEFAULT_REASON, "created_at": now}
            for c in chunk
        ]
        added.update(conn.execute(stmt.returning(S.contact_id), rows).scalars())
    return added


def _update_reasons(conn: Connection, existing: dict[int, str | None]) -> int:
    """Give existing suppressions their explicit new reason; returns how many changed."""
    by_reason: dict[str, list[int]] = {}
    for contact_id, reason in existing.items():
        if reason is not None:
            by_reason.setdefault(reason, []).append(contact_id)
    updated = 0
    for reason, contact_ids in by_reason.items():
        for chunk in _chunks(contact_ids):
            stmt = (
                SUPPRESSIONS.update()
                .where(S.contact_id.in_(chunk), S.reason != reason)
                .values(reason=reason)
                .returning(S.contact_id)
            )
            updated += len(conn.execute(stmt).all())
    return updated
