"""What the fake platform decides for each send: bans, duplicates, unknown recipients,
injected failures and the per-minute limit, in that order, atomically per request."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from worker.mockplatform.config import MockPlatformConfig
from worker.mockplatform.store import AccountStats, PlatformStore, StoredMessage

WINDOW_S = 60.0


class Verdict(StrEnum):
    """How the platform answered one send."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    BANNED = "banned"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The verdict, the message id for accepted/duplicate, the wait for rate-limited."""

    verdict: Verdict
    message_id: str | None = None
    retry_after_s: float | None = None


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with microseconds, e.g. `2026-01-02T03:04:05.000006+00:00`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


class MockPlatform:
    """The platform's behaviour over a `PlatformStore`; the clock and randomness are injectable."""

    def __init__(
        self,
        store: PlatformStore,
        config: MockPlatformConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self._rng = rng
        if config.unknown_recipients:
            self.mark_unknown(config.unknown_recipients)

    def submit(self, account: str, to: str, text: str, idempotency_key: str) -> SendOutcome:
        """Decide and record one send attempt."""
        with self.store.transaction():
            self.store.ensure_account(account)
            if self.store.is_banned(account):
                return SendOutcome(Verdict.BANNED)
            first = self.store.message_by_key(idempotency_key)
            if first is not None:
                self.store.bump(account, "duplicate_attempts")
                return SendOutcome(Verdict.DUPLICATE, message_id=first.message_id)
            if self.store.is_unknown_recipient(to):
                self.store.bump(account, "not_found")
                return SendOutcome(Verdict.NOT_FOUND)
            if self._rng() < self.config.fail_rate:
                self.store.bump(account, "failed")
                return SendOutcome(Verdict.FAILED)
            now = self._clock()
            wait_s = self._window_wait_s(account, now)
            if wait_s is not None:
                self._count_violation(account)
                return SendOutcome(Verdict.RATE_LIMITED, retry_after_s=wait_s)
            return SendOutcome(
                Verdict.ACCEPTED, self._accept(account, to, text, idempotency_key, now)
            )

    def find(self, idempotency_key: str) -> StoredMessage | None:
        return self.store.message_by_key(idempotency_key)

    def messages(self, account: str | None = None, to: str | None = None) -> list[StoredMessage]:
        return self.store.list_messages(account, to)

    def stats(self) -> dict[str, AccountStats]:
        return self.store.stats()

    def mark_unknown(self, recipients: Iterable[str]) -> None:
        """From now on (and after restarts) sends to these recipients get 404."""
        with self.store.transaction():
            self.store.add_unknown_recipients(recipients)

    def _window_wait_s(self, account: str, now: float) -> float | None:
        """Seconds until the account may send again, or None when the window has room."""
        limit = self.config.per_minute
        if limit <= 0:
            return None
        # With `limit` sends in the window, a slot frees when the limit-th latest one leaves it.
        nth = self.store.nth_latest_since(account, now - WINDOW_S, limit)
        return None if nth is None else max(0.0, nth + WINDOW_S - now)

    def _count_violation(self, account: str) -> None:
        violations = self.store.bump(account, "rate_limited")
        if self.config.ban_after and violations >= self.config.ban_after:
            self.store.ban(account)

    def _accept(self, account: str, to: str, text: str, idempotency_key: str, now: float) -> str:
        message_id = f"m-{uuid.uuid4().hex}"
        stored = StoredMessage(message_id, account, to, text, idempotency_key, iso_utc(now), now)
        self.store.insert_message(stored)
        self.store.bump(account, "accepted")
        return message_id
