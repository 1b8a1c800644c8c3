"""Small helpers for limiter tests: instants from ISO strings and a settable fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def epoch_s(iso: str) -> float:
    """Epoch seconds of an ISO-8601 instant with an offset (e.g. "2026-03-08T07:00:00+00:00")."""
    return datetime.fromisoformat(iso).timestamp()


def epoch_ms(iso: str) -> int:
    return round(epoch_s(iso) * 1000)


def local_iso(seconds: float, tz: str) -> str:
    """An instant as local ISO time with its offset, to compare against readable strings."""
    return datetime.fromtimestamp(seconds, ZoneInfo(tz)).isoformat()


def utc_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class FakeClock:
    """Epoch seconds that only move when told to."""

    def __init__(self, start_s: float) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
