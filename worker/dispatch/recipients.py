"""Load what rendering and suppression checks need for a claimed batch, in one query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select

from worker.render import RecipientView
from worker.store import tables
from worker.store.db import dialect_insert
from worker.store.models import Suppression

CT = tables.contacts.c
S = tables.suppressions.c


def load_recipients(engine: Engine, contact_ids: Sequence[int]) -> dict[int, RecipientView]:
    return load_batch(engine, contact_ids)[0]


def load_batch(
    engine: Engine, contact_ids: Sequence[int]
) -> tuple[dict[int, RecipientView], dict[int, str]]:
    """(contact id -> view, contact id -> suppression reason) in one query.

    Contacts that no longer exist are absent from both.
    """
    stmt = (
        select(CT.id, CT.external_id, CT.name, CT.tags, CT.attrs, S.reason)
        .outerjoin(tables.suppressions, S.contact_id == CT.id)
        .where(CT.id.in_(contact_ids))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    views = {
        r[0]: RecipientView(
            contact_id=r[0],
            external_id=r[1],
            name=r[2] or "",
            tags=tuple(r[3] or ()),
            attrs=dict(r[4] or {}),
        )
        for r in rows
    }
    return views, {r[0]: r[5] for r in rows if r[5] is not None}


def suppress(engine: Engine, contact_ids: Sequence[int], reason: str) -> None:
    """Record opt-outs (idempotent)."""
    if not contact_ids:
        return
    insert = dialect_insert(engine)
    stmt = insert(Suppression).on_conflict_do_nothing(index_elements=["contact_id"])
    with engine.begin() as conn:
        conn.execute(stmt, [{"contact_id": cid, "reason": reason} for cid in contact_ids])
