"""Engines and sessions for SQLite (default) and PostgreSQL.

SQLite has no row locks and SQLAlchemy silently drops `skip_locked` there. In WAL mode readers
never block, so plain reads use a deferred `BEGIN`; a transaction that reads and then writes
must take the write lock first, so it runs on `for_writing(engine)`, which begins with
`BEGIN IMMEDIATE` and waits on the busy timeout instead of failing on a lock upgrade
(DESIGN decision 4). A single write statement (a claim's `UPDATE ... RETURNING`) takes the
write lock when it starts, so it needs neither.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from worker.errors import ServiceUnavailable, UserError
from worker.store import migrate, models

_engines: dict[tuple[int, str], Engine] = {}
_lock = threading.Lock()


_WRITE_OPTION = "siyu_write"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def dialect_insert(bind: Engine | Connection) -> Any:
    """The dialect's `insert` (SQLite's or PostgreSQL's), which has `on_conflict_do_nothing`."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert if bind.dialect.name == "sqlite" else pg_insert


def for_writing(engine: Engine) -> Engine:
    """The same engine whose transactions take SQLite's write lock up front."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        _switch_to_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _switch_to_wal(cur: Any, patience_s: float = 60.0) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another connection holds the file.

    On a new file the switch needs the file to itself. Two processes opening it at once both
    read it (a shared lock) and both ask for it alone: SQLite refuses one at once ("database
    is locked") instead of calling the busy handler, which could only deadlock. The refused
    one retries after the other has switched (then there is nothing left to do).
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02 + random.random() * 0.03)  # noqa: S311  (jitter)


def make_engine(url: str) -> Engine:
    """Build an engine for `url`; a malformed URL or missing driver is a `UserError`."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(f"SIYU_DATABASE_URL is not a valid database URL: {url!r}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        kwargs["pool_size"] = 20
        kwargs["max_overflow"] = 20
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError as exc:
        raise UserError(f"unsupported database URL {parsed.render_as_string()!r}: {exc}") from exc
    except ModuleNotFoundError as exc:
        raise UserError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "install siyu with the 'postgres' extra"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    else:
        _ping_when_idle(engine)
    return engine


IDLE_PING_S = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for `IDLE_PING_S`.

    A connection that waited in the pool may have been cut (a database restart, a firewall's
    idle timeout); the check finds that and the pool connects anew, as `pool_pre_ping` would.
    But `pool_pre_ping` checks every checkout, which costs a round trip and about half a
    millisecond of CPU each time: a third of storing an inbound message. A connection in
    steady use fails on its own statement instead, and the pool then replaces them all.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)  # what pool_pre_ping runs
        except Exception as exc:  # whatever the failure: replace this connection
            raise DisconnectionError(f"connection failed its idle check: {exc}") from exc


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: settings), one per process: forked workers get their own."""
    if url is None:
        from worker.config import get_settings

        url = get_settings().database_url
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = make_engine(url)
            _engines[key] = engine
        return engine


def reset_engines() -> None:
    """Forget engines (after fork, or between tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


def describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_connection(engine: Engine) -> None:
    """Raise `ServiceUnavailable` with a one-line reason when the database can't be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ServiceUnavailable(f"cannot reach the database {describe(engine)}: {reason}") from exc


# Any constant shared by every siyu process: `siyu init`s on one PostgreSQL take turns.
_INIT_LOCK_KEY = 0x5179_7500


def init_db(engine: Engine) -> None:
    """Apply the schema migrations the database lacks and make the installation row;
    idempotent.

    Several processes may run it at once: on PostgreSQL an advisory lock makes them take
    turns (two concurrent `CREATE TABLE`s of one name fail there even with IF NOT EXISTS);
    on SQLite the transaction's `BEGIN IMMEDIATE` does. Either way the migrations run in
    that one transaction: a failure leaves the database as it was.
    """
    check_connection(engine)
    with for_writing(engine).begin() as conn:
        if not is_sqlite(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INIT_LOCK_KEY})
        migrate.upgrade(conn)
        _ensure_installation(conn)


def _ensure_installation(conn: Connection) -> None:
    """The installation row, with a tracking secret (added to one an older siyu made)."""
    table = models.Installation.__table__  # type: ignore[attr-defined]
    row = conn.execute(select(table.c.uid, table.c.tracking_secret)).first()
    if row is None:
        conn.execute(
            table.insert().values(
                id=1,
                uid=uuid.uuid4().hex[:16],
                created_at=models.utcnow(),
                tracking_secret=secrets.token_urlsafe(32),
            )
        )
    elif row.tracking_secret is None:
        conn.execute(table.update().values(tracking_secret=secrets.token_urlsafe(32)))


_installations: dict[str, tuple[str, str | None]] = {}


def installation_id(engine: Engine) -> str:
    """This database's installation id (created by `init_db`), cached per database URL."""
    return _installation(engine, need_secret=False)[0]


def tracking_secret(engine: Engine, override: SecretStr | None = None) -> str:
    """What signs tracked links' recipient tokens: `override` (SIYU_TRACKING_SECRET) when
    set, else the secret `siyu init` made for this database (cached per database URL)."""
    if override is not None:
        return override.get_secret_value()
    secret = _installation(engine, need_secret=True)[1]
    if not secret:
        raise ServiceUnavailable(
            f"the database {describe(engine)} has no tracking secret; run `siyu init`"
        )
    return secret


def _installation(engine: Engine, *, need_secret: bool) -> tuple[str, str | None]:
    """(installation id, tracking secret), read in one query and cached per database URL;
    read again when the secret is needed and an older siyu's row had none."""
    url = engine.url.render_as_string(hide_password=False)
    found = _installations.get(url)
    if found is None or (need_secret and not found[1]):
        table = models.Installation.__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            row = conn.execute(select(table.c.uid, table.c.tracking_secret)).first()
        if row is None or row[0] is None:
            raise ServiceUnavailable(
                f"the database {describe(engine)} has no installation id; run `siyu init`"
            )
        found = _installations[url] = (row[0], row[1])
    return found


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A writing session that commits on success and rolls back on error."""
    session = Session(for_writing(engine or get_engine()), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
