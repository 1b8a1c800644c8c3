"""Turn a run's segment into delivery rows: keyset chunks, constant memory, resumable.

Contacts are walked by id up to the snapshot taken at start; each chunk (a range of contact
ids) is one transaction: one `INSERT ... SELECT` in which the database picks each member's
account and skip reason (`campaigns.assignment`), with `ON CONFLICT DO NOTHING` so a repeat
is harmless, then `materialised_upto` advances. Excluded members get a `skipped` row with
the reason, so every member of the segment appears in exactly one state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Subquery,
    case,
    func,
    literal,
    select,
    true,
    update,
)
from sqlmodel import Session

from worker.audience.segments import compile_segment
from worker.campaigns import lookup
from worker.campaigns.assignment import Sender, assigned_members
from worker.campaigns.capacity import sender_weights
from worker.campaigns.evergreen import not_messaged
from worker.dispatch.keys import keys
from worker.dispatch.lease import Lease
from worker.runtime import Context
from worker.store import tables
from worker.store.db import dialect_insert, for_writing
from worker.store.models import (
    Account,
    AccountState,
    CampaignRun,
    CampaignStatus,
    Delivery,
    DeliveryState,
    utcnow,
)

R = tables.campaign_runs.c
# Run states whose audience may still be written: a cancelled run writes the rest as skipped.
MATERIALISING = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED)
CT = tables.contacts.c
D = tables.deliveries.c
# The delivery columns one INSERT ... SELECT fills, in the order `_insert` selects them.
INSERTED = (
    "run_id",
    "contact_id",
    "account_id",
    "state",
    "reason",
    "attempts",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class _Plan:
    run_id: int
    expression: str
    senders: tuple[Sender, ...]
    snapshot_max: int
    weights: dict[int, int]
    # A cron campaign's runs write only members the campaign has not messaged (`evergreen`).
    only_new: ColumnElement[Any] | None = None


def _plan(ctx: Context, run_id: int) -> _Plan | None:
    C, S = tables.campaigns.c, tables.segments.c
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(
                R.id,
                S.expression,
                R.snapshot_max_contact_id,
                R.campaign_id,
                R.start_at,
                R.end_at,
                C.cron,
            )
            .join(tables.campaigns, C.id == R.campaign_id)
            .join(tables.segments, S.id == C.segment_id)
            .where(R.id == run_id, R.started_at.is_not(None), R.status.in_(MATERIALISING))
        ).first()
    if row is None:
        return None  # not begun (no snapshot yet), or over
    with Session(ctx.engine) as session:
        accounts = lookup.campaign_accounts(session, row[3])
    return _Plan(
        run_id=row[0],
        expression=row[1],
        snapshot_max=row[2],
        senders=tuple(Sender(a.id, a.channel, a.state == AccountState.ACTIVE) for a in accounts),  # type: ignore[arg-type]
        weights=_weights(ctx, accounts, row[4], row[5]),
        only_new=not_messaged(row[3], row[0]) if row[6] else None,
    )


def _weights(
    ctx: Context, accounts: list[Account], start: datetime, end: datetime | None
) -> dict[int, int]:
    """Capacity weights over the run's window (a week when it has no end)."""
    from worker.dispatch.pacers import policies

    start_ms = int(max(start, utcnow()).replace(tzinfo=UTC).timestamp() * 1000)
    end_ms = int(end.replace(tzinfo=UTC).timestamp() * 1000) if end else start_ms + 7 * 86_400_000
    margin_ms = ctx.settings.limit_margin_ms
    end_ms = max(end_ms, start_ms + 1)
    return sender_weights(ctx.engine, policies(ctx), accounts, start_ms, end_ms, margin_ms)


def member_query(expression: str, after_id: int, upto_id: int, limit: int) -> Select[Any]:
    """The next keyset chunk of segment members (id, owner, channel)."""
    return (
        select(CT.id, CT.owner_id, CT.channel)
        .where(compile_segment(expression), CT.id > after_id, CT.id <= upto_id)
        .order_by(CT.id)
        .limit(limit)
    )


def _chunk_end(conn: Connection, after_id: int, upto_id: int, size: int) -> int | None:
    """The last contact id of the next chunk of `size` contacts, None when none is left.

    Chunks are ranges of contact ids (an index-only scan of the primary key), so the
    segment's condition is evaluated once, inside the INSERT ... SELECT.
    """
    ids = (
        select(CT.id)
        .where(CT.id > after_id, CT.id <= upto_id)
        .order_by(CT.id)
        .limit(size)
        .subquery()
    )
    end = conn.execute(select(func.max(ids.c.id))).scalar()
    return None if end is None else int(end)


def _write_chunk(
    engine: Engine, plan: _Plan, after_id: int, size: int
) -> tuple[int | None, set[int]]:
    """Insert the next chunk's rows and advance the cursor in one transaction.

    Returns the chunk's last contact id (None when nothing is left) and the accounts that
    got pending rows. Rows already present are left alone (`ON CONFLICT DO NOTHING`).
    """
    with for_writing(engine).begin() as conn:
        # Lock the run row: a concurrent cancel waits, so no pending row slips in after it.
        status, end_at = conn.execute(
            select(R.status, R.end_at).where(R.id == plan.run_id).with_for_update()
        ).one()
        if status not in MATERIALISING:
            return None, set()  # never write into a run that is over (DESIGN 14)
        last_id = _chunk_end(conn, after_id, plan.snapshot_max, size)
        if last_id is None:
            return None, set()
        members = assigned_members(
            plan.senders,
            plan.weights,
            cancelled=status == CampaignStatus.CANCELLED,
            closed=end_at is not None and end_at <= utcnow(),
        ).where(compile_segment(plan.expression), CT.id > after_id, CT.id <= last_id)
        if plan.only_new is not None:
            members = members.where(plan.only_new)
        pending = _insert(conn, plan.run_id, members.subquery())
        conn.execute(
            update(CampaignRun).where(R.id == plan.run_id).values(materialised_upto=last_id)
        )
    return last_id, pending


def _insert(conn: Connection, run_id: int, members: Subquery) -> set[int]:
    """INSERT ... SELECT the members' delivery rows; the accounts that got pending ones."""
    now = literal(utcnow(), D.created_at.type)
    rows = select(
        literal(run_id),
        members.c.contact_id,
        members.c.account_id,
        case(
            (members.c.reason.is_(None), literal(DeliveryState.PENDING.value)),
            else_=literal(DeliveryState.SKIPPED.value),
        ),
        members.c.reason,
        literal(0),
        now,
        now,
    ).where(true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    insert = dialect_insert(conn)
    stmt = (
        insert(tables.deliveries)
        .from_select(list(INSERTED), rows)
        .on_conflict_do_nothing(index_elements=["run_id", "contact_id"])
        .returning(D.account_id, D.state)
    )
    return {account for account, state in conn.execute(stmt) if state == DeliveryState.PENDING}


def _finish(engine: Engine, run_id: int) -> None:
    """Mark the run materialised, only if the cursor really reached the snapshot."""
    with for_writing(engine).begin() as conn:
        total = conn.execute(
            select(func.count()).select_from(Delivery).where(D.run_id == run_id)
        ).scalar_one()
        conn.execute(
            update(CampaignRun)
            .where(
                R.id == run_id,
                R.status.in_(MATERIALISING),
                R.started_at.is_not(None),
                R.materialised_upto >= R.snapshot_max_contact_id,
            )
            .values(materialised=True, expected_total=int(total))
        )


def materialise(
    ctx: Context, run_id: int, *, on_chunk: Callable[[set[int]], None] | None = None
) -> bool:
    """Materialise the rest of a run; False if another process is already doing it."""
    names = keys(ctx)
    lock = Lease(ctx.redis, names.materialise(run_id), 120_000)
    if not lock.acquire():
        return False
    ctx.redis.delete(names.materialise_queued(run_id))
    try:
        _materialise_locked(ctx, run_id, lock, on_chunk)
    finally:
        lock.release()
    return True


def _materialise_locked(
    ctx: Context, run_id: int, lock: Lease, on_chunk: Callable[[set[int]], None] | None
) -> None:
    engine = ctx.engine
    plan = _plan(ctx, run_id)
    if plan is None:
        return
    with engine.connect() as conn:
        upto = conn.execute(select(R.materialised_upto).where(R.id == run_id)).scalar_one()
    chunk_size = ctx.settings.materialise_chunk
    while lock.renew():
        last_id, pending = _write_chunk(engine, plan, upto, chunk_size)
        if last_id is None:
            _finish(engine, run_id)
            return
        upto = last_id
        if on_chunk is not None:
            on_chunk(pending)
