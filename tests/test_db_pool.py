"""Pooled PostgreSQL connections: checked before use only after sitting idle, and a cut one
is replaced without the caller seeing it (`store.db._ping_when_idle`)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from worker.store import db
from worker.store.db import make_engine


def pool_with_a_cut_connection(pg_url: str) -> tuple[Engine, int]:
    """An engine whose one pooled connection's server process was terminated; its pid."""
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    killer = make_engine(pg_url)
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    killer.dispose()
    return engine, pid


def test_a_connection_cut_while_idle_is_replaced_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_PING_S", 0.0)  # every pooled connection counts as idle
    engine, old = pool_with_a_cut_connection(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != old
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_checked(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost saved: no check on a busy connection (its own statement fails instead)."""
    monkeypatch.setattr(db, "IDLE_PING_S", 3600.0)
    engine, _ = pool_with_a_cut_connection(pg_url)
    with pytest.raises(OperationalError, match=r"terminat|closed|server"), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    with engine.connect() as conn:  # the failure replaced the pool's connections
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
