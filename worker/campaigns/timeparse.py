"""Operator-facing times: ISO 8601 in, naive UTC stored, zone-aware out.

Out comes in two spellings of one instant, both in the zone the time belongs to (the
campaign's, the account's, else the installation's `SIYU_TZ`), to the second, with the offset:
`local_iso` for machines (JSON, CSV: `2026-12-04T22:30:05+08:00`) and `local_text` for people
(tables and status lines: `2026-12-04 22:30:05 +08:00`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import UserError

Instant = datetime | str | None  # naive UTC as stored, or ISO 8601 text as in a JSON document


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


def local(value: Instant, tz: ZoneInfo) -> datetime | None:
    """The instant in `tz`, to the second; None for None. Text without an offset is UTC."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(tz).replace(microsecond=0)


def local_iso(value: Instant, tz: ZoneInfo) -> str:
    """ISO 8601 in `tz` with its offset, to the second (`2026-12-04T22:30:05+08:00`); ''
    for None."""
    when = local(value, tz)
    return "" if when is None else when.isoformat()


def local_text(value: Instant, tz: ZoneInfo) -> str:
    """For people: `2026-12-04 22:30:05 +08:00` in `tz`; '' for None."""
    text = local_iso(value, tz)
    return text and f"{text[:10]} {text[11:19]} {text[19:]}"
