"""Operator-facing times: ISO 8601 in, naive UTC stored, zone-aware out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import UserError


def zone(name: str, *, field: str = "--tz") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UserError(
            f"{field}: unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)"
        ) from exc


def parse_when(text: str, tz: str, *, field: str) -> datetime:
    """ISO 8601 (a time without offset is in `tz`) -> naive UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UserError(
            f"{field}: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00 or "
            "2026-12-01T09:00+08:00)"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return value.astimezone(UTC).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str | None:
    """Naive UTC -> ISO 8601 with offset, or None."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat()
