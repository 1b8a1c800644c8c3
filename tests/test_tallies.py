"""The delivery tallies (migration 0003, `worker.store.tallies`) against the rows themselves.

Whatever writes deliveries (bulk inserts, updates of state or account, deletes, on SQLite
and PostgreSQL, folded or not), the tallies equal a GROUP BY over the table, and the sends
per minute equal every move into `sent`.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select, update

from tests.support.world import add_accounts, add_contacts
from worker.store import tables
from worker.store.db import is_sqlite
from worker.store.models import utcnow
from worker.store.tallies import (
    fold,
    forget_minutes,
    run_counts,
    sent_per_minute,
    state_counts,
)

D = tables.deliveries.c
STATES = ("pending", "claimed", "sending", "sent", "failed", "skipped", "unknown")
CONTACTS = 40
T0 = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=30)


def make_runs(engine: Engine, count: int) -> list[int]:
    """Runs to hang deliveries on (one campaign; the tallies care only about the ids)."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(tables.segments).values(name="s", expression="tag = x", created_at=now))
        segment = conn.execute(select(tables.segments.c.id)).scalar_one()
        conn.execute(
            insert(tables.campaigns).values(
                name="c", segment_id=segment, template="t", vars={}, status="running",
                kind="once", skip_unrenderable=False, start_at=now, created_at=now, tz="UTC",
            )
        )  # fmt: skip
        campaign = conn.execute(select(tables.campaigns.c.id)).scalar_one()
        run = {
            "campaign_id": campaign, "status": "running", "start_at": now, "created_at": now,
            "snapshot_max_contact_id": 0, "materialised_upto": 0, "materialised": True,
            "expected_total": 0,
        }  # fmt: skip
        conn.execute(insert(tables.campaign_runs), [dict(run) for _ in range(count)])
        return list(conn.execute(select(tables.campaign_runs.c.id)).scalars())


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    accounts = list(add_accounts(engine, ["a1", "a2", "a3"]).values())
    add_contacts(engine, CONTACTS)
    with engine.connect() as conn:
        contacts = list(conn.execute(select(tables.contacts.c.id)).scalars())
    return {"accounts": accounts, "contacts": contacts, "runs": make_runs(engine, 2)}


def truth(engine: Engine) -> tuple[dict[tuple[int | None, str], int], dict[int, Counter[Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.run_id, D.account_id, D.state, func.count()).group_by(
                D.run_id, D.account_id, D.state
            )
        ).all()
    by_key: Counter[tuple[int | None, str]] = Counter()
    by_run: dict[int, Counter[Any]] = {}
    for run_id, account_id, state, n in rows:
        by_key[(account_id, state)] += n
        if run_id is not None:
            by_run.setdefault(run_id, Counter())[(account_id, state)] += n
    return dict(by_key), by_run


def assert_tallies_match(engine: Engine, runs: list[int], sent: Counter[Any]) -> None:
    by_key, by_run = truth(engine)
    with engine.connect() as conn:
        assert state_counts(conn) == by_key
        counted = run_counts(conn, runs)
        minutes = sent_per_minute(conn, T0 - timedelta(hours=1))
    assert counted == {run: dict(by_run.get(run, {})) for run in runs}
    seen = Counter({(a, m): n for a, per in minutes.items() for m, n in per.items()})
    assert seen == +sent


# One write: (kind, first index, how many, state, account index or None, run index or None)
writes = st.tuples(
    st.sampled_from(["insert", "state", "account", "delete", "fold"]),
    st.integers(0, CONTACTS - 1),
    st.integers(1, 12),
    st.sampled_from(STATES),
    st.one_of(st.none(), st.integers(0, 2)),
    st.one_of(st.none(), st.integers(0, 1)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(writes, min_size=1, max_size=25))
def test_the_tallies_equal_the_rows_after_any_writes(
    engine: Engine, world: dict[str, Any], script: list[tuple[Any, ...]]
) -> None:
    with engine.begin() as conn:  # a fresh table for each example; the delete is tallied too
        conn.execute(delete(tables.deliveries))
    fold(engine)
    with engine.begin() as conn:
        conn.execute(delete(tables.sent_minutes))
    sent: Counter[Any] = Counter()
    for step, (kind, first, count, state, account, run) in enumerate(script):
        apply(
            engine,
            world,
            kind,
            first,
            count,
            state,
            account,
            run,
            T0 + timedelta(minutes=step),
            sent,
        )
    assert_tallies_match(engine, world["runs"], sent)
    fold(engine)
    assert_tallies_match(engine, world["runs"], sent)


def apply(
    engine: Engine, world: dict[str, Any], kind: str, first: int, count: int, state: str,
    account: int | None, run: int | None, when: datetime, sent: Counter[Any],
) -> None:  # fmt: skip
    account_id = None if account is None else world["accounts"][account]
    if kind == "fold":
        fold(engine)
        return
    with engine.begin() as conn:
        every = sorted(conn.execute(select(D.id)).scalars())
        start = first % len(every) if every else 0
        ids = every[start : start + count]
        if kind == "insert":
            run_id = None if run is None else world["runs"][run]
            taken = set(conn.execute(select(D.contact_id).where(D.run_id == run_id)).scalars())
            free = [c for c in world["contacts"] if c not in taken][:count]
            rows = [
                {"run_id": run_id, "contact_id": c, "account_id": account_id, "state": state,
                 "attempts": 0, "created_at": when, "updated_at": when,
                 "sent_at": when if state == "sent" else None}
                for c in free
            ]  # fmt: skip
            if rows:
                conn.execute(insert(tables.deliveries), rows)
            if state == "sent":
                sent[(account_id, when)] += len(rows)
        elif kind == "state":
            olds = conn.execute(select(D.account_id, D.state).where(D.id.in_(ids))).all()
            conn.execute(
                update(tables.deliveries)
                .where(D.id.in_(ids))
                .values(state=state, sent_at=when if state == "sent" else D.sent_at)
            )
            if state == "sent":
                for old_account, old_state in olds:
                    sent[(old_account, when)] += old_state != "sent"
        elif kind == "account":
            conn.execute(
                update(tables.deliveries).where(D.id.in_(ids)).values(account_id=account_id)
            )
        else:
            conn.execute(delete(tables.deliveries).where(D.id.in_(ids)))


def test_a_fold_never_takes_a_change_its_writer_has_not_committed(
    engine: Engine, world: dict[str, Any]
) -> None:
    """Forced ordering: a writer's statement has run (its deltas exist, uncommitted), a fold
    runs and commits, then the writer commits: every change is counted once."""
    run = world["runs"][0]
    rows = [
        {"run_id": run, "contact_id": c, "account_id": world["accounts"][0], "state": "pending",
         "attempts": 0, "created_at": T0, "updated_at": T0}
        for c in world["contacts"][:10]
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(tables.deliveries), rows)
    writer = engine.connect()
    tx = writer.begin()
    writer.execute(
        update(tables.deliveries).where(D.state == "pending").values(state="sent", sent_at=T0)
    )
    if not is_sqlite(engine):  # SQLite's writer holds the only write lock: no fold can run now
        assert fold(engine)
    tx.commit()
    writer.close()
    sent = Counter({(world["accounts"][0], T0): 10})
    assert_tallies_match(engine, world["runs"], sent)
    assert fold(engine)
    assert_tallies_match(engine, world["runs"], sent)
    with engine.connect() as conn:
        assert run_counts(conn, [run])[run] == {(world["accounts"][0], "sent"): 10}


def test_two_folds_at_once_leave_one_to_do_the_work(pg_engine: Engine) -> None:
    holder = pg_engine.connect()
    tx = holder.begin()
    holder.execute(select(func.pg_advisory_xact_lock(func.hashtext("siyu:fold-tallies"))))
    assert fold(pg_engine) is False, "the second fold returns at once"
    tx.rollback()
    holder.close()
    assert fold(pg_engine) is True


def test_concurrent_lanes_and_folds_count_every_change_once(pg_engine: Engine) -> None:
    """Four writers moving their own rows through the states in small statements while two
    threads fold as fast as they can."""
    accounts = list(add_accounts(pg_engine, ["b1", "b2", "b3", "b4"]).values())
    add_contacts(pg_engine, 400)
    run = make_runs(pg_engine, 1)[0]
    with pg_engine.begin() as conn:
        contacts = list(conn.execute(select(tables.contacts.c.id)).scalars())
        conn.execute(
            insert(tables.deliveries),
            [{"run_id": run, "contact_id": c, "account_id": accounts[i % 4], "state": "pending",
              "attempts": 0, "created_at": T0, "updated_at": T0} for i, c in enumerate(contacts)],
        )  # fmt: skip
    stop = threading.Event()

    def lane(account_id: int) -> None:
        for step in ("claimed", "sending", "sent"):
            for _ in range(10):
                with pg_engine.begin() as conn:
                    ids = conn.execute(
                        select(D.id).where(D.account_id == account_id, D.state != step)
                        .where(D.state != "sent").order_by(D.id).limit(10)
                    ).scalars().all()  # fmt: skip
                    conn.execute(
                        update(tables.deliveries).where(D.id.in_(ids))
                        .values(state=step, sent_at=T0 if step == "sent" else None)
                    )  # fmt: skip

    def folder() -> None:
        while not stop.is_set():
            fold(pg_engine)

    folders = [threading.Thread(target=folder) for _ in range(2)]
    lanes = [threading.Thread(target=lane, args=(a,)) for a in accounts]
    for t in folders + lanes:
        t.start()
    for t in lanes:
        t.join()
    stop.set()
    for t in folders:
        t.join()
    by_key, by_run = truth(pg_engine)
    with pg_engine.connect() as conn:
        assert state_counts(conn) == by_key
        assert run_counts(conn, [run])[run] == dict(by_run[run])
        per_minute = sent_per_minute(conn, T0)
    sent = {a: n for (a, state), n in by_key.items() if state == "sent"}
    assert sent and {a: sum(per.values()) for a, per in per_minute.items()} == sent


def test_sends_per_minute_past_keeping_are_forgotten_by_the_hourly_purge(
    engine: Engine, world: dict[str, Any]
) -> None:
    old = T0 - timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.deliveries),
            [{"run_id": world["runs"][0], "contact_id": c, "account_id": world["accounts"][1],
              "state": "sent", "attempts": 1, "created_at": old, "updated_at": old,
              "sent_at": when}
             for c, when in zip(world["contacts"][:2], (old, T0), strict=True)],
        )  # fmt: skip
    fold(engine)
    assert forget_minutes(engine) == 1
    with engine.connect() as conn:
        minutes = sent_per_minute(conn, old - timedelta(hours=1))
        assert minutes == {world["accounts"][1]: {T0: 1}}
        assert state_counts(conn) == {(world["accounts"][1], "sent"): 2}, "counts are kept"


def test_a_row_marked_sent_again_is_not_a_second_send(
    engine: Engine, world: dict[str, Any]
) -> None:
    account = world["accounts"][2]
    with engine.begin() as conn:
        conn.execute(
            insert(tables.deliveries),
            [{"run_id": world["runs"][1], "contact_id": c, "account_id": account,
              "state": "sending", "attempts": 1, "created_at": T0, "updated_at": T0}
             for c in world["contacts"][:3]],
        )  # fmt: skip
    later = T0 + timedelta(minutes=5)
    for when in (T0, later):  # a settle repeated (a retried statement) writes `sent` again
        with engine.begin() as conn:
            conn.execute(update(tables.deliveries).values(state="sent", sent_at=when))
    with engine.connect() as conn:
        assert sent_per_minute(conn, T0) == {account: {T0: 3}}
        assert state_counts(conn) == {(account, "sent"): 3}
