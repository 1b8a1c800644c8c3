"""Chunked contact upserts: each chunk travels as one JSON document that SQL expands.

One statement with one bound document per chunk (`json_each` on SQLite, `jsonb_to_recordset`
on PostgreSQL) avoids per-row driver and type-processing overhead, which dominates a plain
executemany. ON CONFLICT (channel, external_id) keeps `id` and `created_at`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from worker.audience.rows import ContactRow
from worker.errors import UserError
from worker.store import tables

CONTACTS: Table = tables.contacts
FIELDS = ("external_id", "name", "tags", "attrs", "owner_id")  # what each JSON row carries
COLUMNS = ("channel", *FIELDS, "created_at", "updated_at")
REPLACED = ("name", "tags", "attrs", "owner_id", "updated_at")  # on re-import


def upsert_statement(dialect: str) -> Insert:
    """INSERT ... SELECT from the `rows` document ... ON CONFLICT DO UPDATE, for `dialect`."""
    if dialect == "postgresql":
        pg = pg_insert(CONTACTS).from_select(COLUMNS, _pg_rows())
        excluded = pg.excluded
        return pg.on_conflict_do_update(
            index_elements=["channel", "external_id"], set_={c: excluded[c] for c in REPLACED}
        )
    if dialect == "sqlite":
        lite = sqlite_insert(CONTACTS).from_select(COLUMNS, _sqlite_rows())
        excluded = lite.excluded
        return lite.on_conflict_do_update(
            index_elements=["channel", "external_id"], set_={c: excluded[c] for c in REPLACED}
        )
    raise UserError(f"contacts import supports SQLite and PostgreSQL, not {dialect}")


def chunk_parameters(channel: str, rows: Sequence[ContactRow], now: datetime) -> dict[str, Any]:
    """The bound values for one execution of `upsert_statement`."""
    document = [{name: getattr(row, name) for name in FIELDS} for row in rows]
    return {"channel": channel, "now": now, "rows": json.dumps(document, ensure_ascii=False)}


def _constants() -> tuple[Any, Any]:
    return bindparam("channel", type_=String()), bindparam("now", type_=DateTime())


def _pg_rows() -> Select[Any]:
    document = cast(bindparam("rows", type_=Text()), JSONB)
    rows = (
        func.jsonb_to_recordset(document)
        .table_valued(
            column("external_id", Text),
            column("name", Text),
            column("tags", JSONB),
            column("attrs", JSONB),
            column("owner_id", Integer),
        )
        .render_derived(with_types=True)
    )
    channel, now = _constants()
    return select(channel, *(rows.c[name] for name in FIELDS), now, now)


def _sqlite_rows() -> Select[Any]:
    rows = func.json_each(bindparam("rows", type_=Text())).table_valued("value")
    fields = (func.json_extract(rows.c.value, literal(f"$.{name}")) for name in FIELDS)
    channel, now = _constants()
    # SQLite needs a WHERE in INSERT ... SELECT ... ON CONFLICT to parse it unambiguously.
    return select(channel, *fields, now, now).where(true())
