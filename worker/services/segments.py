"""Segments use cases: define a named expression, look it up, count its members."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from worker.audience.segments import compile_segment, segment_member_count
from worker.errors import NotFound, UserError
from worker.store.db import session_scope
from worker.store.models import Segment

NAMES_IN_NOT_FOUND = 10


class SegmentSummary(TypedDict):
    """A segment as `segments show --json` prints it."""

    name: str
    where: str
    members: int


def add_segment(engine: Engine, name: str, where: str) -> Segment:
    """Store a new segment after checking its expression compiles; a taken name is a UserError."""
    name = name.strip()
    if not name:
        raise UserError("a segment needs a non-empty name")
    compile_segment(where)  # before trimming, so error columns match what was typed
    where = where.strip()
    taken = UserError(f"segment {name!r} already exists; pick another name")
    try:
        with session_scope(engine) as session:
            if session.exec(select(Segment.id).where(Segment.name == name)).first() is not None:
                raise taken
            segment = Segment(name=name, expression=where)
            session.add(segment)
    except IntegrityError as exc:  # created concurrently between our check and insert
        raise taken from exc
    return segment


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
