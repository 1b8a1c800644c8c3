"""Contacts use cases: CSV import (see `worker.audience.importer`) and listing."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.sql.elements import ColumnElement

from worker.audience.importer import ImportReport, InvalidRows, RowError, import_contacts
from worker.audience.segments import compile_segment
from worker.channels.registry import channel_class
from worker.services.segments import get_segment
from worker.store import tables

CONTACTS: Table = tables.contacts
ACCOUNTS: Table = tables.accounts

__all__ = [
    "ContactView",
    "ImportReport",
    "InvalidRows",
    "RowError",
    "count_contacts",
    "import_contacts",
    "list_contacts",
]


class ContactView(TypedDict):
    """A contact as `contacts list --json` prints it."""

    external_id: str
    name: str
    channel: str
    tags: list[str]
    attrs: dict[str, str]
    owner: str | None


def _filters(engine: Engine, segment: str | None, channel: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if channel is not None:
        channel_class(channel)
        conditions.append(CONTACTS.c.channel == channel)
    if segment is not None:
        conditions.append(compile_segment(get_segment(engine, segment).expression))
    return conditions


def list_contacts(
    engine: Engine,
    *,
    segment: str | None = None,
    channel: str | None = None,
    limit: int | None = None,
) -> list[ContactView]:
    """Contacts in import order, optionally only a segment's members or one channel's."""
    c = CONTACTS.c
    query = (
        select(c.external_id, c.name, c.channel, c.tags, c.attrs, ACCOUNTS.c.name)
        .select_from(CONTACTS.outerjoin(ACCOUNTS, ACCOUNTS.c.id == c.owner_id))
        .where(*_filters(engine, segment, channel))
        .order_by(c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            ContactView(
                external_id=r[0], name=r[1], channel=r[2], tags=r[3], attrs=r[4], owner=r[5]
            )
            for r in conn.execute(query)
        ]


def count_contacts(
    engine: Engine, *, segment: str | None = None, channel: str | None = None
) -> int:
    """How many contacts `list_contacts` would return without a limit."""
    query = select(func.count()).select_from(CONTACTS).where(*_filters(engine, segment, channel))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
