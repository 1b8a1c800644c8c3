"""The delivery outbox: claim with leases, commit `sending` before the channel call, settle.

State machine (DESIGN decision 1):
    pending -> claimed -> sending -> sent | failed | skipped | unknown
Every transition is a conditional UPDATE on the row's state and lease owner, so a lane that
lost its lease can never overwrite what another lane or the reconciler decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    Text,
    Update,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from worker.replies.model import Action
from worker.store import tables
from worker.store.db import is_sqlite
from worker.store.models import Author, CampaignStatus, Delivery, DeliveryState, utcnow

D = tables.deliveries.c
R = tables.campaign_runs.c
S = tables.suppressions.c
# The values a settle writes, with their SQL types (PostgreSQL binds each as one array).
# Prefixed: SQLAlchemy reserves bind names equal to column names in UPDATE statements.
SETTLE_COLUMNS: dict[str, Any] = {
    "b_id": BigInteger,
    "b_state": Text,
    "b_reason": Text,
    "b_error": Text,
    "b_mid": Text,
    "b_sent_at": DateTime,
    "b_not_before": DateTime,
    "b_unsent": Integer,
}


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    run_id: int | None  # None: a reply, carrying the outbound message `message_id`
    contact_id: int
    attempts: int
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one send ended; `state` is the row's final (or next) state."""

    delivery_id: int
    state: DeliveryState
    reason: str | None = None
    error: str | None = None
    message_id: str | None = None
    retry_at: datetime | None = None
    # Marked `sending` but never handed to the channel: the attempt is given back.
    unsent: bool = False


def claim(
    engine: Engine,
    account_id: int,
    run_ids: Sequence[int],
    limit: int,
    owner: str,
    lease_s: float,
) -> list[Claimed]:
    """Move up to `limit` due pending rows of these runs for this account to `claimed`."""
    if not run_ids:
        return []
    return _claim(engine, account_id, D.run_id.in_(run_ids), limit, owner, lease_s)


def claim_replies(
    engine: Engine, account_id: int, limit: int, owner: str, lease_s: float
) -> list[Claimed]:
    """Like `claim`, for the account's due replies (rows that carry a message, not a run)."""
    return _claim(engine, account_id, D.run_id.is_(None), limit, owner, lease_s)


def _claim(
    engine: Engine,
    account_id: int,
    which: ColumnElement[bool],
    limit: int,
    owner: str,
    lease_s: float,
) -> list[Claimed]:
    """PostgreSQL: `FOR UPDATE SKIP LOCKED` in the sub-select; SQLite: the surrounding
    `BEGIN IMMEDIATE` transaction serialises claimers (see worker.store.db)."""
    if limit <= 0:
        return []
    now = utcnow()
    due = select(D.id).where(
        D.account_id == account_id,
        D.state == DeliveryState.PENDING,
        which,
        or_(D.not_before.is_(None), D.not_before <= now),
    )
    due = due.order_by(D.id).limit(limit)
    if not is_sqlite(engine):
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Delivery)
        .where(D.id.in_(due.scalar_subquery()))
        .values(
            state=DeliveryState.CLAIMED,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(D.id, D.run_id, D.contact_id, D.attempts, D.message_id)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def mark_sending(engine: Engine, ids: Iterable[int], owner: str) -> set[int]:
    """Commit `sending` for the rows we still hold that pass the last look; only those go.

    The last look (DESIGN 15) is part of the same statement: the contact is not suppressed
    and the row's run is still running, as of the moment the row is marked, so an opt-out or
    a pause committed a second ago is honoured. A reply has no run; it passes a suppression
    only when it confirms the opt-out or a person wrote it (`reaches_suppressed`).
    `last_look_misses` says why a row failed it.
    """
    ids = list(ids)
    if not ids:
        return set()
    suppressed = exists().where(S.contact_id == D.contact_id)
    running = exists().where(R.id == D.run_id, R.status == CampaignStatus.RUNNING)
    stmt = (
        update(Delivery)
        .where(
            D.id.in_(ids),
            D.state == DeliveryState.CLAIMED,
            D.lease_owner == owner,
            or_(~suppressed, reaches_suppressed()),
            or_(D.run_id.is_(None), running),
        )
        .values(state=DeliveryState.SENDING, attempts=D.attempts + 1, updated_at=utcnow())
        .returning(D.id)
    )
    with engine.begin() as conn:
        return {row[0] for row in conn.execute(stmt)}


def reaches_suppressed() -> ColumnElement[bool]:
    """The delivery is a reply that may reach a suppressed contact: the opt-out's own
    confirmation, or an answer a person wrote (`siyu reply`). An automatic answer may not."""
    M = tables.messages.c
    return exists().where(
        M.id == D.message_id,
        or_(M.action == Action.OPT_OUT, M.author == Author.HUMAN),
    )


def last_look_misses(engine: Engine, ids: Iterable[int], owner: str) -> list[Outcome]:
    """For claimed rows that `mark_sending` refused: suppressed contacts are `skipped` with the
    suppression's reason; rows of a run that stopped running go back to `pending`."""
    stmt = (
        select(D.id, S.reason)
        .outerjoin(tables.suppressions, S.contact_id == D.contact_id)
        .where(D.id.in_(list(ids)), D.state == DeliveryState.CLAIMED, D.lease_owner == owner)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        Outcome(row_id, DeliveryState.SKIPPED, reason=reason)
        if reason is not None
        else Outcome(row_id, DeliveryState.PENDING)
        for row_id, reason in rows
    ]


def extend(engine: Engine, ids: Sequence[int], owner: str, lease_s: float) -> int:
    """Extend the database lease of the rows `owner` still holds (claimed or sending)."""
    if not ids:
        return 0
    stmt = (
        update(Delivery)
        .where(D.id.in_(list(ids)), D.lease_owner == owner, D.state.in_(HELD))
        .values(lease_until=utcnow() + timedelta(seconds=lease_s))
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)


SETTLEABLE = (DeliveryState.CLAIMED, DeliveryState.SENDING, DeliveryState.UNKNOWN)
HELD = (DeliveryState.CLAIMED, DeliveryState.SENDING)


def settle(engine: Engine, outcomes: Sequence[Outcome], owner: str | None) -> int:
    """Record outcomes for rows still held by `owner` (None: rows with no owner).

    PostgreSQL gets the whole batch in one `UPDATE ... FROM unnest(...)` (one statement,
    one plan, one round trip); SQLite, in-process, runs one UPDATE per row.
    """
    if not outcomes:
        return 0
    now = utcnow()
    rows = [
        {
            "b_id": o.delivery_id,
            "b_state": str(o.state),
            "b_reason": o.reason,
            "b_error": (o.error or None) and o.error[:500],
            "b_mid": o.message_id,
            "b_sent_at": now if o.state == DeliveryState.SENT else None,
            "b_not_before": o.retry_at,
            "b_unsent": 1 if o.unsent else 0,
        }
        for o in outcomes
    ]
    with engine.begin() as conn:
        if is_sqlite(engine):
            result = conn.execute(_settle_one(owner, now), rows)
        else:
            arrays = {name: [row[name] for row in rows] for name in SETTLE_COLUMNS}
            result = conn.execute(_settle_all(owner, now), arrays)
    return int(result.rowcount or 0)


def _settled(row: Any, now: datetime) -> dict[Any, Any]:
    """The SET clause of a settle, reading each value from `row` (a row or bound names)."""
    return {
        D.state: row["b_state"],
        D.reason: row["b_reason"],
        D.last_error: row["b_error"],
        D.provider_message_id: func.coalesce(row["b_mid"], D.provider_message_id),
        D.sent_at: row["b_sent_at"],
        D.not_before: row["b_not_before"],
        D.attempts: D.attempts - row["b_unsent"],
        D.lease_owner: None,
        D.lease_until: None,
        D.updated_at: now,
    }


def _settle_one(owner: str | None, now: datetime) -> Update:
    params: dict[str, Any] = {name: bindparam(name) for name in SETTLE_COLUMNS}
    return (
        update(Delivery)
        # no IN (...): expanding parameters cannot be used with executemany
        .where(D.id == params["b_id"], or_(*(D.state == s for s in SETTLEABLE)), _owner_is(owner))
        .values(_settled(params, now))
    )


def _settle_all(owner: str | None, now: datetime) -> Update:
    arrays = (bindparam(name, type_=ARRAY(kind)) for name, kind in SETTLE_COLUMNS.items())
    v = func.unnest(*arrays).table_valued(*SETTLE_COLUMNS).render_derived(name="v")
    return (
        update(Delivery)
        .where(D.id == v.c.b_id, D.state.in_(SETTLEABLE), _owner_is(owner))
        .values(_settled(v.c, now))
    )


def skip_unsent(
    conn: Connection,
    run_ids: Any,
    reason: str,
    states: Sequence[DeliveryState] = (DeliveryState.PENDING, DeliveryState.CLAIMED),
) -> int:
    """Rows of these runs not yet being sent become `skipped` with `reason`.

    `run_ids` is a list or a subquery. A claimed row's lane then finds it gone at its last
    look and never sends it; `sending` rows are in flight and settle on their own.
    """
    stmt = (
        update(Delivery)
        .where(D.run_id.in_(run_ids), D.state.in_(list(states)))
        .values(
            state=DeliveryState.SKIPPED,
            reason=reason,
            lease_owner=None,
            lease_until=None,
            updated_at=utcnow(),
        )
    )
    return int(conn.execute(stmt).rowcount or 0)


def release(engine: Engine, ids: Iterable[int], owner: str) -> int:
    """Give claimed rows back (nothing was sent): they become `pending` again."""
    ids = list(ids)
    if not ids:
        return 0
    stmt = (
        update(Delivery)
        .where(D.id.in_(ids), D.state == DeliveryState.CLAIMED, D.lease_owner == owner)
        .values(
            state=DeliveryState.PENDING, lease_owner=None, lease_until=None, updated_at=utcnow()
        )
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)


def expired_leases(engine: Engine) -> list[tuple[str | None, int | None]]:
    """Distinct (owner, account) of claimed or sending rows whose database lease has passed.

    Only candidates: a row is abandoned when, in addition, its owner no longer holds the
    account's lane lease in Redis (`dispatch.reconcile`).
    """
    stmt = select(D.lease_owner, D.account_id).where(D.state.in_(HELD), _expired()).distinct()
    with engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(stmt)]


def requeue_claimed(engine: Engine, owner: str | None) -> int:
    """Claimed rows of a dead owner go back to `pending`: nothing of theirs was sent."""
    stmt = (
        update(Delivery)
        .where(D.state == DeliveryState.CLAIMED, _owner_is(owner), _expired())
        .values(
            state=DeliveryState.PENDING, lease_owner=None, lease_until=None, updated_at=utcnow()
        )
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)


def stuck_sending(engine: Engine, owner: str | None, limit: int = 500) -> list[tuple[int, int]]:
    """(delivery id, account id) of `sending` rows of a dead owner: ambiguous sends."""
    stmt = (
        select(D.id, D.account_id)
        .where(D.state == DeliveryState.SENDING, _owner_is(owner), _expired())
        .order_by(D.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(stmt)]


def _expired() -> ColumnElement[bool]:
    return or_(D.lease_until.is_(None), D.lease_until < utcnow())


def _owner_is(owner: str | None) -> ColumnElement[bool]:
    return D.lease_owner.is_(None) if owner is None else D.lease_owner == owner
