"""Turn a run's segment into delivery rows: keyset chunks, constant memory, resumable.

Contacts are walked by id up to the snapshot taken at start; each chunk is one transaction
that inserts its rows (`ON CONFLICT DO NOTHING`, so a repeat is harmless) and advances
`materialised_upto`. Excluded members get a `skipped` row with the reason, so every member
of the segment appears in exactly one state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from worker.audience.segments import compile_segment
from worker.campaigns import lookup
from worker.campaigns.capacity import pick, sender_weights
from worker.dispatch.lease import Lease
from worker.dispatch.recipients import suppressed_among
from worker.runtime import Context
from worker.store import tables
from worker.store.db import for_writing, is_sqlite
from worker.store.models import (
    Account,
    AccountState,
    CampaignRun,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryState,
    utcnow,
)

R = tables.campaign_runs.c
CT = tables.contacts.c
D = tables.deliveries.c


@dataclass(frozen=True)
class _Sender:
    id: int
    channel: str
    active: bool


@dataclass(frozen=True)
class _Plan:
    run_id: int
    expression: str
    senders: tuple[_Sender, ...]
    snapshot_max: int
    weights: dict[int, int]


def lock_key(run_id: int) -> str:
    return f"siyu:materialise:{run_id}"


def _plan(ctx: Context, run_id: int) -> _Plan | None:
    C, S = tables.campaigns.c, tables.segments.c
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(
                R.id, S.expression, R.snapshot_max_contact_id, R.campaign_id, R.start_at, R.end_at
            )
            .join(tables.campaigns, C.id == R.campaign_id)
            .join(tables.segments, S.id == C.segment_id)
            .where(R.id == run_id)
        ).first()
    if row is None:
        return None
    with Session(ctx.engine) as session:
        accounts = lookup.campaign_accounts(session, row[3])
    return _Plan(
        run_id=row[0],
        expression=row[1],
        snapshot_max=row[2],
        senders=tuple(_Sender(a.id, a.channel, a.state == AccountState.ACTIVE) for a in accounts),  # type: ignore[arg-type]
        weights=_weights(ctx, accounts, row[4], row[5]),
    )


def _weights(
    ctx: Context, accounts: list[Account], start: datetime, end: datetime | None
) -> dict[int, int]:
    """Capacity weights over the run's window (a week when it has no end)."""
    from worker.dispatch.pacers import policies

    start_ms = int(max(start, utcnow()).replace(tzinfo=UTC).timestamp() * 1000)
    end_ms = int(end.replace(tzinfo=UTC).timestamp() * 1000) if end else start_ms + 7 * 86_400_000
    return sender_weights(ctx.engine, policies(ctx), accounts, start_ms, max(end_ms, start_ms + 1))


def member_query(expression: str, after_id: int, upto_id: int, limit: int) -> Select[Any]:
    """The next keyset chunk of segment members (id, owner, channel)."""
    return (
        select(CT.id, CT.owner_id, CT.channel)
        .where(compile_segment(expression), CT.id > after_id, CT.id <= upto_id)
        .order_by(CT.id)
        .limit(limit)
    )


def count_members(engine: Engine, expression: str, upto_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(Contact)
        .where(compile_segment(expression), CT.id <= upto_id)
    )
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def max_contact_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(CT.id), 0))).scalar_one())


def _assign(
    plan: _Plan, contact_id: int, owner_id: int | None, channel: str
) -> tuple[int | None, str | None]:
    """(account, skip reason): owner-bound contacts only go to their owner (DESIGN 9)."""
    reachable = [s for s in plan.senders if s.channel == channel]
    if owner_id is not None:
        if any(s.id == owner_id for s in reachable):
            return owner_id, None
        return None, "owner_not_in_campaign"
    if not reachable:
        return None, "no_reachable_account"
    active = [s.id for s in reachable if s.active] or [s.id for s in reachable]
    return pick(contact_id, active, plan.weights), None


def _rows(
    plan: _Plan,
    chunk: list[tuple[int, int | None, str]],
    suppressed: dict[int, str],
    cancelled: bool,
) -> list[dict[str, Any]]:
    now = utcnow()
    out = []
    for contact_id, owner_id, channel in chunk:
        account_id, reason = _assign(plan, contact_id, owner_id, channel)
        if cancelled:
            reason = "cancelled"
        elif contact_id in suppressed:
            reason = suppressed[contact_id]
        out.append(
            {
                "run_id": plan.run_id,
                "contact_id": contact_id,
                "account_id": account_id,
                "state": DeliveryState.SKIPPED if reason else DeliveryState.PENDING,
                "reason": reason,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    return out


def _write_chunk(engine: Engine, run_id: int, rows: list[dict[str, Any]], last_id: int) -> str:
    """Insert one chunk and advance the cursor atomically; returns the run's status."""
    insert = sqlite_insert if is_sqlite(engine) else pg_insert
    stmt = insert(Delivery).on_conflict_do_nothing(index_elements=["run_id", "contact_id"])
    with for_writing(engine).begin() as conn:
        # Lock the run row: a concurrent cancel waits, so no pending row slips in after it.
        status, end_at = conn.execute(
            select(R.status, R.end_at).where(R.id == run_id).with_for_update()
        ).one()
        if status == CampaignStatus.CANCELLED:
            for row in rows:
                row.update(state=DeliveryState.SKIPPED, reason="cancelled")
        elif end_at is not None and end_at <= utcnow():
            for row in rows:
                if row["state"] == DeliveryState.PENDING:
                    row.update(state=DeliveryState.SKIPPED, reason="window_closed")
        if rows:
            conn.execute(stmt, rows)
        conn.execute(update(CampaignRun).where(R.id == run_id).values(materialised_upto=last_id))
    return str(status)


def _finish(engine: Engine, run_id: int) -> None:
    with for_writing(engine).begin() as conn:
        total = conn.execute(
            select(func.count()).select_from(Delivery).where(D.run_id == run_id)
        ).scalar_one()
        conn.execute(
            update(CampaignRun)
            .where(R.id == run_id)
            .values(materialised=True, expected_total=int(total))
        )


def materialise(
    ctx: Context, run_id: int, *, on_chunk: Callable[[set[int]], None] | None = None
) -> bool:
    """Materialise the rest of a run; False if another process is already doing it."""
    lock = Lease(ctx.redis, lock_key(run_id), 120_000)
    if not lock.acquire():
        return False
    ctx.redis.delete(f"siyu:materialise-queued:{run_id}")
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
        upto, status = conn.execute(
            select(R.materialised_upto, R.status).where(R.id == run_id)
        ).one()
    chunk_size = ctx.settings.materialise_chunk
    while lock.renew():
        with engine.connect() as conn:
            chunk = [
                tuple(r)
                for r in conn.execute(
                    member_query(plan.expression, upto, plan.snapshot_max, chunk_size)
                )
            ]
        if not chunk:
            _finish(engine, run_id)
            return
        suppressed = suppressed_among(engine, [c[0] for c in chunk])
        rows = _rows(plan, chunk, suppressed, status == CampaignStatus.CANCELLED)
        upto = chunk[-1][0]
        status = _write_chunk(engine, run_id, rows, upto)
        if on_chunk is not None:
            on_chunk({int(r["account_id"]) for r in rows if r["state"] == DeliveryState.PENDING})
