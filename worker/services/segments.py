"""Segments use cases: define a named expression, look it up, count its members, delete it."""

from __future__ import annotations

from typing import NamedTuple, TypedDict

from sqlalchemy import Engine, delete, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from worker.audience.segment_check import check_segment
from worker.audience.segments import segment_member_count
from worker.errors import Conflict, NotFound, UserError
from worker.store.db import session_scope
from worker.store.models import Campaign, CampaignStatus, Segment

LIVE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
)

NAMES_IN_NOT_FOUND = 10


class SegmentSummary(TypedDict):
    """A segment as `segments show --json` prints it."""

    name: str
    where: str
    members: int


class SegmentCount(TypedDict):
    """What an expression not saved as a segment selects now, and notes as `segments add`."""

    where: str
    members: int
    notes: list[str]


class AddedSegment(NamedTuple):
    """The stored segment and the notes on what `allow_unknown` let through."""

    segment: Segment
    notes: list[str]


def check_where(engine: Engine, where: str, *, allow_unknown: bool = False) -> list[str]:
    """Check an operator's expression against the contacts; notes on what was let through.

    Unknown fields or values raise `SegmentError` naming the closest known one, unless
    `allow_unknown`; a value of the wrong type (or an impossible date) always raises.
    """
    with engine.connect() as conn:
        return check_segment(conn, where, allow_unknown=allow_unknown)


def count_where(engine: Engine, where: str, *, allow_unknown: bool = False) -> SegmentCount:
    """The live member count of an expression being written: checked as `add_segment` checks
    it (a syntax error names its column), nothing stored."""
    notes = check_where(engine, where, allow_unknown=allow_unknown)
    members = segment_member_count(engine, where)
    return SegmentCount(where=where.strip(), members=members, notes=notes)


def add_segment(
    engine: Engine, name: str, where: str, *, allow_unknown: bool = False
) -> AddedSegment:
    """Store a new segment after `check_where`; a taken name is a UserError."""
    name = name.strip()
    if not name:
        raise UserError("a segment needs a non-empty name")
    notes = check_where(engine, where, allow_unknown=allow_unknown)  # columns as typed
    where = where.strip()
    taken = Conflict(f"segment {name!r} already exists; pick another name")
    try:
        with session_scope(engine) as session:
            if session.exec(select(Segment.id).where(Segment.name == name)).first() is not None:
                raise taken
            segment = Segment(name=name, expression=where)
            session.add(segment)
    except IntegrityError as exc:  # created concurrently between our check and insert
        raise taken from exc
    return AddedSegment(segment, notes)


def delete_segment(engine: Engine, name: str) -> None:
    """Delete a segment that no campaign refers to; else a UserError naming the campaigns."""
    segment_id = get_segment(engine, name).id
    unused = ~exists().where(col(Campaign.segment_id) == segment_id)
    try:
        with engine.begin() as conn:
            deleted = conn.execute(delete(Segment).where(col(Segment.id) == segment_id, unused))
        if deleted.rowcount == 1:
            return
    except IntegrityError:  # a campaign was created on it meanwhile
        pass
    raise Conflict(_in_use(engine, name, segment_id))


def _in_use(engine: Engine, name: str, segment_id: int | None) -> str:
    with session_scope(engine) as session:
        query = select(Campaign.name, Campaign.status).where(Campaign.segment_id == segment_id)
        users = list(session.exec(query.order_by(Campaign.name)))
    live = [f"{n} ({status})" for n, status in users if status in LIVE]
    if live:
        return (
            f"segment {name!r} is used by live campaign(s) {', '.join(live)}; "
            "cancel or delete them first"
        )
    if not users:  # it changed under us; nothing is wrong with it now
        return f"segment {name!r} changed while being deleted; run the command again"
    done = ", ".join(f"{n} ({status})" for n, status in users)
    return f"segment {name!r} is kept for the history of campaign(s) {done}"


def get_segment(session_or_engine: Session | Engine, name: str) -> Segment:
    """The segment called `name`; `NotFound` lists (a few of) the names that do exist."""
    if isinstance(session_or_engine, Session):
        return _get(session_or_engine, name)
    with session_scope(session_or_engine) as session:
        return _get(session, name)


def _get(session: Session, name: str) -> Segment:
    segment = session.exec(select(Segment).where(Segment.name == name)).first()
    if segment is not None:
        return segment
    query = select(Segment.name).order_by(Segment.name).limit(NAMES_IN_NOT_FOUND + 1)
    names = list(session.exec(query))
    if not names:
        raise NotFound(
            f"segment {name!r} not found; there are no segments yet (add one with "
            "'siyu segments add NAME --where EXPR')"
        )
    shown = ", ".join(names[:NAMES_IN_NOT_FOUND])
    more = ", ..." if len(names) > NAMES_IN_NOT_FOUND else ""
    raise NotFound(f"segment {name!r} not found; known segments: {shown}{more}")


def show_segment(engine: Engine, name: str) -> SegmentSummary:
    """The segment's expression and its current member count."""
    return _summary(engine, get_segment(engine, name))


def list_segments(engine: Engine) -> list[SegmentSummary]:
    """Every segment by name, with its current member count."""
    with session_scope(engine) as session:
        segments = list(session.exec(select(Segment).order_by(Segment.name)))
    return [_summary(engine, segment) for segment in segments]


def _summary(engine: Engine, segment: Segment) -> SegmentSummary:
    members = segment_member_count(engine, segment.expression)
    return SegmentSummary(name=segment.name, where=segment.expression, members=members)
