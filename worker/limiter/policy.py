"""Read and validate `rate_limits/<name>.toml`, and pick the policy an account uses.

Every mistake is a `UserError` of one line naming the file, the field and what was expected,
so `load_policies` at start-up stops a malformed policy before the first send.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.errors import UserError
from worker.limiter.model import (
    UNLIMITED_DEFAULT,
    AccountLimits,
    Policy,
    QuietHours,
    RecipientLimits,
)

__all__ = [
    "UNLIMITED_DEFAULT",
    "AccountLimits",
    "Policy",
    "QuietHours",
    "RecipientLimits",
    "load_policies",
    "parse_policy",
    "parse_policy_text",
    "resolve_policy",
]

ACCOUNT_COUNTS = ("per_second", "per_minute", "per_hour", "per_day")
ACCOUNT_KEYS = (*ACCOUNT_COUNTS, "min_gap_s", "max_gap_s", "quiet_hours")
RECIPIENT_KEYS = ("per_day", "per_week", "min_gap_s")
TABLES = {"account": ACCOUNT_KEYS, "recipient": RECIPIENT_KEYS}
_TOML_WHERE = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def show(value: object) -> str:
    """A value as the operator wrote it in TOML: strings quoted, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    return str(value)


class _File:
    """Error messages for one policy file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}")

    def expected(self, table: str, key: str, what: str, got: object) -> UserError:
        return self.error(f"[{table}].{key} must be {what}, got {show(got)}")

    def unknown(self, what: str, name: str, known: tuple[str, ...], fmt: str = "{}") -> UserError:
        """`unknown <what> (did you mean ...? known: ...)`; `fmt` decorates each known name."""
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {fmt.format(close[0])}? " if close else ""
        names = ", ".join(fmt.format(k) for k in known)
        return self.error(f"unknown {what} ({hint}known: {names})")


def _count(where: _File, table: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise where.expected(table, key, "a positive integer", value)
    return value


def _seconds(where: _File, key: str, value: object, table: str = "account") -> float:
    what = "a non-negative number of seconds"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.expected(table, key, what, value)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise where.expected(table, key, what, value)
    return seconds


def _minute(hh: str, mm: str, *, end: bool) -> int | None:
    hours, minutes = int(hh), int(mm)
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        return None
    return (hours * 60 + minutes) % (24 * 60)


def _quiet_hours(where: _File, value: object) -> QuietHours:
    what = 'a local-time range "HH:MM-HH:MM" such as "22:00-08:00"'
    match = _QUIET.match(value) if isinstance(value, str) else None
    if match is None:
        raise where.expected("account", "quiet_hours", what, value)
    start = _minute(match[1], match[2], end=False)
    end = _minute(match[3], match[4], end=True)
    if start is None or end is None:
        raise where.expected("account", "quiet_hours", what, value)
    if start == end:
        raise where.expected("account", "quiet_hours", "a range with different ends", value)
    return QuietHours(start, end)


def _gaps(where: _File, table: Mapping[str, Any]) -> tuple[float, float]:
    """(min, max): one alone means a fixed gap (min) or a gap up to max (max)."""
    low = _seconds(where, "min_gap_s", table["min_gap_s"]) if "min_gap_s" in table else None
    high = _seconds(where, "max_gap_s", table["max_gap_s"]) if "max_gap_s" in table else None
    if low is not None and high is not None and high < low:
        what = f"at least min_gap_s ({low:g})"
        raise where.expected("account", "max_gap_s", what, table["max_gap_s"])
    low = 0.0 if low is None else low
    return low, low if high is None else high


def _account(where: _File, table: Mapping[str, Any]) -> AccountLimits:
    counts = {k: _count(where, "account", k, table[k]) for k in ACCOUNT_COUNTS if k in table}
    min_gap_s, max_gap_s = _gaps(where, table)
    quiet = table.get("quiet_hours")
    return AccountLimits(
        **counts,
        min_gap_s=min_gap_s,
        max_gap_s=max_gap_s,
        quiet_hours=None if quiet is None else _quiet_hours(where, quiet),
    )


def _recipient(where: _File, table: Mapping[str, Any]) -> RecipientLimits:
    counts = {k: _count(where, "recipient", k, v) for k, v in table.items() if k != "min_gap_s"}
    gap = table.get("min_gap_s")
    min_gap_s = None if gap is None else _seconds(where, "min_gap_s", gap, table="recipient")
    return RecipientLimits(**counts, min_gap_s=min_gap_s or None)


def _tables(where: _File, document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The known tables of a parsed document, each checked for unknown keys."""
    for name, value in document.items():
        if name not in TABLES:
            kind = f"table [{name}]" if isinstance(value, dict) else f"top-level key {name}"
            raise where.unknown(kind, name, tuple(TABLES), "[{}]")
        if not isinstance(value, dict):
            raise where.error(f"{name} must be a table [{name}], got {show(value)}")
        for key in value:
            if key not in TABLES[name]:
                raise where.unknown(f"key [{name}].{key}", key, TABLES[name])
    return {name: document.get(name, {}) for name in TABLES}


def _toml(where: _File, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_WHERE.match(str(exc))
        if found is None:
            raise where.error(f"invalid TOML: {exc}") from None
        message = f"line {found['line']}: invalid TOML: {found['what']} (column {found['col']})"
        raise where.error(message) from None


def parse_policy_text(text: str, source: str, name: str) -> Policy:
    """The policy written in `text`; `source` names the file in error messages."""
    where = _File(source)
    tables = _tables(where, _toml(where, text))
    account = _account(where, tables["account"])
    return Policy(name, account, _recipient(where, tables["recipient"]), source)


def parse_policy(path: Path) -> Policy:
    """The policy in one file, named after the file (`rate_limits/wecom.toml` -> `wecom`)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the policy: {exc.strerror}") from None
    return parse_policy_text(text, str(path), path.stem)


def load_policies(directory: Path, *, missing_ok: bool = False) -> dict[str, Policy]:
    """Every `*.toml` policy in `directory`, validated, by name.

    A missing directory is an error unless `missing_ok`: running without the limits the
    operator wrote must never happen silently.
    """
    if not directory.is_dir():
        if missing_ok and not directory.exists():
            return {}
        raise UserError(
            f"{directory}: rate-limit policy directory not found (set SIYU_RATE_LIMITS_DIR)"
        )
    return {p.stem: parse_policy(p) for p in sorted(directory.glob("*.toml"))}


def resolve_policy(policies: dict[str, Policy], account_policy: str | None, channel: str) -> Policy:
    """The policy an account uses: the one it names, else its channel's, else `default`.

    A policy the account names but nobody wrote is a `UserError` listing the available ones.
    Without a `default.toml` the built-in default applies, which limits nothing.
    """
    if account_policy:
        if account_policy in policies:
            return policies[account_policy]
        if account_policy == "default":
            return UNLIMITED_DEFAULT
        available = ", ".join(sorted(policies)) or "none"
        raise UserError(
            f"rate-limit policy {account_policy!r} does not exist (available: {available})"
        )
    if channel in policies:
        return policies[channel]
    return policies.get("default", UNLIMITED_DEFAULT)
