"""Load what rendering and suppression checks need for a claimed batch, in two queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from worker.render import RecipientView
from worker.store import tables
from worker.store.db import is_sqlite
from worker.store.models import Suppression

CT = tables.contacts.c
S = tables.suppressions.c


def load_recipients(engine: Engine, contact_ids: Sequence[int]) -> dict[int, RecipientView]:
    stmt = select(CT.id, CT.external_id, CT.name, CT.tags, CT.attrs).where(CT.id.in_(contact_ids))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {
        r[0]: RecipientView(
            contact_id=r[0],
            external_id=r[1],
            name=r[2] or "",
            tags=tuple(r[3] or ()),
            attrs=dict(r[4] or {}),
        )
        for r in rows
    }


def suppressed_among(engine: Engine, contact_ids: Sequence[int]) -> dict[int, str]:
    """contact id -> suppression reason, for the suppressed ones."""
    stmt = select(S.contact_id, S.reason).where(S.contact_id.in_(contact_ids))
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(stmt)}


def suppress(engine: Engine, contact_ids: Sequence[int], reason: str) -> None:
    """Record opt-outs (idempotent)."""
    if not contact_ids:
        return
    insert = sqlite_insert if is_sqlite(engine) else pg_insert
    stmt = insert(Suppression).on_conflict_do_nothing(index_elements=["contact_id"])
    with engine.begin() as conn:
        conn.execute(stmt, [{"contact_id": cid, "reason": reason} for cid in contact_ids])
