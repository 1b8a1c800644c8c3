"""Delivery counts without counting deliveries: the tallies the triggers of migration 0003
keep, read in a few rows whatever the number of deliveries.

    delivery_counts  (run, account, state) -> n      sent_minutes  (run, account, minute) -> n

On PostgreSQL the triggers append deltas (one row per statement and group) that `fold` adds
into those tables; every read adds the deltas not folded yet, in the same statement, so a
read is exact at any moment. On SQLite the triggers write the tables directly and there is
nothing to fold. Run 0 holds replies (deliveries with no run); account 0, rows with no account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select, text, union_all

from worker.store import tables
from worker.store.db import is_sqlite
from worker.store.models import utcnow

C, CD = tables.delivery_counts.c, tables.delivery_count_deltas.c
M, MD = tables.sent_minutes.c, tables.sent_minute_deltas.c
KEEP_MINUTES = timedelta(days=2)  # as migration 0003's KEEP_MINUTES_DAYS
_FOLD_LOCK = "siyu:fold-tallies"

Key = tuple[int | None, str]  # (account id or None, delivery state)


def _none(value: int) -> int | None:
    return None if value == 0 else value


def run_counts(conn: Connection, run_ids: Iterable[int]) -> dict[int, dict[Key, int]]:
    """For each run: (account id, state) -> deliveries; every run asked for is present."""
    ids = list(run_ids)
    out: dict[int, dict[Key, int]] = {run_id: {} for run_id in ids}
    if not ids:
        return out
    parts = [select(t.run_id, t.account_id, t.state, t.n).where(t.run_id.in_(ids)) for t in (C, CD)]
    for run_id, account_id, state, n in conn.execute(
        _summed(parts, "run_id", "account_id", "state")
    ):
        if n:
            out[run_id][(_none(account_id), state)] = int(n)
    return out


def state_counts(conn: Connection) -> dict[Key, int]:
    """(account id, state) -> deliveries, over every run and reply."""
    parts = [select(t.account_id, t.state, t.n) for t in (C, CD)]
    return {
        (_none(account_id), state): int(n)
        for account_id, state, n in conn.execute(_summed(parts, "account_id", "state"))
        if n
    }


def sent_per_minute(
    conn: Connection, since: datetime, run_ids: Iterable[int] | None = None
) -> dict[int | None, dict[datetime, int]]:
    """Account id -> UTC minute -> deliveries sent, for minutes from `since`'s on (naive
    UTC); of the given runs only, or of every run and reply."""
    start = since.replace(second=0, microsecond=0)
    parts = []
    for t in (M, MD):
        part = select(t.account_id, t.minute, t.n).where(t.minute >= start)
        if run_ids is not None:
            part = part.where(t.run_id.in_(list(run_ids)))
        parts.append(part)
    out: dict[int | None, dict[datetime, int]] = defaultdict(dict)
    for account_id, minute, n in conn.execute(_summed(parts, "account_id", "minute")):
        out[_none(account_id)][minute] = int(n)
    return dict(out)


AnySelect = Select[*tuple[Any, ...]]


def _summed(parts: Sequence[AnySelect], *keys: str) -> AnySelect:
    both = union_all(*parts).subquery()
    columns = [both.c[key] for key in keys]
    return select(*columns, func.sum(both.c.n)).group_by(*columns)


def fold(engine: Engine) -> bool:
    """Add PostgreSQL's deltas into the tallies (SQLite has none: True at once).

    One fold at a time (an advisory lock; a second returns False at once). Each delta is
    deleted and added in one statement, so it is counted once, and readers, who add the
    deltas left, see the same totals before, during and after.
    """
    if is_sqlite(engine):
        return True
    with engine.begin() as conn:
        taken = conn.execute(select(func.pg_try_advisory_xact_lock(func.hashtext(_FOLD_LOCK))))
        if not taken.scalar_one():
            return False
        conn.execute(FOLD_COUNTS)
        conn.execute(FOLD_MINUTES)
    return True


def forget_minutes(engine: Engine, now: datetime | None = None) -> int:
    """Drop sends per minute older than `KEEP_MINUTES` (the hourly purge: not every tick, as
    on SQLite it takes the write lock and reads the whole table)."""
    cutoff = (now or utcnow()) - KEEP_MINUTES
    with engine.begin() as conn:
        return int(conn.execute(tables.sent_minutes.delete().where(M.minute < cutoff)).rowcount)


FOLD_COUNTS = text(
    """
    WITH gone AS (DELETE FROM delivery_count_deltas RETURNING run_id, account_id, state, n)
    INSERT INTO delivery_counts (run_id, account_id, state, n)
    SELECT run_id, account_id, state, sum(n) FROM gone
    GROUP BY run_id, account_id, state ORDER BY run_id, account_id, state
    ON CONFLICT (run_id, account_id, state) DO UPDATE SET n = delivery_counts.n + excluded.n
    """
)
FOLD_MINUTES = text(
    """
    WITH gone AS (DELETE FROM sent_minute_deltas RETURNING run_id, account_id, minute, n)
    INSERT INTO sent_minutes (run_id, account_id, minute, n)
    SELECT run_id, account_id, minute, sum(n) FROM gone
    GROUP BY run_id, account_id, minute ORDER BY run_id, account_id, minute
    ON CONFLICT (run_id, account_id, minute) DO UPDATE SET n = sent_minutes.n + excluded.n
    """
)
