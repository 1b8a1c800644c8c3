"""SQLite storage primitives for the mock platform: messages, per-account counters, recipients.

Only atomic reads and writes live here; what the platform decides (duplicates, limits, bans)
lives in `platform.py`, inside one `transaction()`. One connection is shared by every thread
behind a lock; WAL keeps readers from other processes (tests, people with `sqlite3`) unblocked.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    received_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_account_ts ON messages (account, received_ts);
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,
    accepted INTEGER NOT NULL DEFAULT 0,
    duplicate_attempts INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    not_found INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    banned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS unknown_recipients (recipient TEXT PRIMARY KEY);
"""

COUNTERS = ("accepted", "duplicate_attempts", "rate_limited", "not_found", "failed")
_MESSAGE_COLUMNS = "message_id, account, recipient, text, idempotency_key, received_at, received_ts"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One accepted message; `received_ts` (unix seconds) drives the rate-limit window."""

    message_id: str
    account: str
    to: str
    text: str
    idempotency_key: str
    received_at: str
    received_ts: float

    def to_json(self) -> dict[str, str]:
        """The public shape served by `GET /v1/messages`."""
        return {
            "message_id": self.message_id,
            "account": self.account,
            "to": self.to,
            "text": self.text,
            "idempotency_key": self.idempotency_key,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class AccountStats:
    """The per-account counters served by `GET /v1/stats`."""

    accepted: int
    duplicate_attempts: int
    rate_limited: int
    not_found: int
    failed: int
    banned: bool


def _account_stats(row: tuple[Any, ...]) -> AccountStats:
    accepted, duplicates, rate_limited, not_found, failed, banned = row
    return AccountStats(accepted, duplicates, rate_limited, not_found, failed, bool(banned))


class PlatformStore:
    """The platform's SQLite file; every method is atomic, `transaction()` groups several."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash can lose the last commits.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction; roll back if the body raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ensure_account(self, account: str) -> None:
        self._write("INSERT OR IGNORE INTO accounts (account) VALUES (?)", (account,))

    def bump(self, account: str, counter: str) -> int:
        """Add one to `counter` of `account` (which must exist); returns the new value."""
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}")
        with self._lock:
            row = self._conn.execute(
                f"UPDATE accounts SET {counter} = {counter} + 1 WHERE account = ? "  # noqa: S608  (constant names)
                f"RETURNING {counter}",
                (account,),
            ).fetchone()
        return int(row[0])

    def is_banned(self, account: str) -> bool:
        row = self._read_one("SELECT banned FROM accounts WHERE account = ?", (account,))
        return bool(row and row[0])

    def ban(self, account: str) -> None:
        self._write("UPDATE accounts SET banned = 1 WHERE account = ?", (account,))

    def message_by_key(self, idempotency_key: str) -> StoredMessage | None:
        row = self._read_one(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE idempotency_key = ?",  # noqa: S608  (constant names)
            (idempotency_key,),
        )
        return StoredMessage(*row) if row else None

    def insert_message(self, message: StoredMessage) -> None:
        self._write(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608  (constant names)
            (
                message.message_id,
                message.account,
                message.to,
                message.text,
                message.idempotency_key,
                message.received_at,
                message.received_ts,
            ),
        )

    def nth_latest_since(self, account: str, since_ts: float, n: int) -> float | None:
        """`received_ts` of the account's n-th most recent message after `since_ts`, if any."""
        row = self._read_one(
            "SELECT received_ts FROM messages WHERE account = ? AND received_ts > ? "
            "ORDER BY received_ts DESC LIMIT 1 OFFSET ?",
            (account, since_ts, n - 1),
        )
        return float(row[0]) if row else None

    def list_messages(self, account: str | None, to: str | None) -> list[StoredMessage]:
        """Accepted messages in the order they arrived, optionally for one account/recipient."""
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE 1 = 1"  # noqa: S608  (constant names)
        params: list[str] = []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if to is not None:
            sql += " AND recipient = ?"
            params.append(to)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [StoredMessage(*row) for row in rows]

    def stats(self) -> dict[str, AccountStats]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT account, {', '.join(COUNTERS)}, banned FROM accounts ORDER BY account"  # noqa: S608  (constant names)
            ).fetchall()
        return {row[0]: _account_stats(row[1:]) for row in rows}

    def add_unknown_recipients(self, recipients: Iterable[str]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO unknown_recipients (recipient) VALUES (?)",
                [(r,) for r in recipients],
            )

    def is_unknown_recipient(self, recipient: str) -> bool:
        row = self._read_one("SELECT 1 FROM unknown_recipients WHERE recipient = ?", (recipient,))
        return row is not None

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)

    def _read_one(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row
