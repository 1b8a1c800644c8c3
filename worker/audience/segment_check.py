"""Check an expression against the contacts, so a segment cannot silently select the wrong people.

Each condition, in the order written:
- its field is `tag`, a contact column (name, external_id, channel, owner) or an attribute that
  some contact has;
- a value compared with an attribute whose values are all numbers is a number, with one whose
  values are all dates (YYYY-MM-DD) a date; a value shaped like a date is a real date;
- a value tested for equality (`=`, `!=`, `in`, `not in`) matches some contact.
With `allow_unknown`, unknown fields and values become notes; wrong types never do.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date

from sqlalchemy import Connection

from worker.audience.segment_catalog import (
    BUILT_IN,
    AttributeStats,
    attribute_keys,
    attribute_stats,
    common_values,
    values_exist,
)
from worker.audience.segment_parser import Condition, SegmentError, parse_segment
from worker.audience.segments import NUMBER, conditions

EQUALITY = frozenset({"=", "!=", "in", "not in"})
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FIELDS_SHOWN = 20
VALUES_SHOWN = 5
ALLOW_HINT = "use --allow-unknown to keep it anyway"


def check_segment(conn: Connection, expression: str, *, allow_unknown: bool = False) -> list[str]:
    """Check `expression` against the contacts in `conn`; the notes on what was let through.

    Raises `SegmentSyntaxError` or `SegmentError` (both `UserError`) naming the column.
    """
    found = list(conditions(parse_segment(expression)))
    return _Checker(conn, expression, allow_unknown).run(found)


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate most like `word` (ignoring case), earlier ones winning ties, or None."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


class _Checker:
    def __init__(self, conn: Connection, expression: str, allow_unknown: bool) -> None:
        self.conn = conn
        self.expression = expression
        self.allow_unknown = allow_unknown
        self.notes: list[tuple[int, str]] = []

    def run(self, found: list[Condition]) -> list[str]:
        stats = attribute_stats(self.conn, {c.name for c in found if c.name not in BUILT_IN})
        known = []
        for condition in found:
            self.check_dates(condition)
            if condition.name in BUILT_IN or condition.name in stats:
                self.check_type(condition, stats.get(condition.name))
                known.append(condition)
            else:
                self.unknown(condition.column, self.unknown_field(condition.name))
        self.check_values(known)
        return [f"column {column}: {note}" for column, note in sorted(self.notes)]

    def error(self, column: int, problem: str) -> SegmentError:
        return SegmentError(self.expression, column, problem)

    def unknown(self, column: int, problem: str) -> None:
        """An error, or with `allow_unknown` a note that the expression is kept anyway."""
        if not self.allow_unknown:
            raise self.error(column, f"{problem} ({ALLOW_HINT})")
        self.notes.append((column, f"{problem} (kept anyway: --allow-unknown)"))

    def unknown_field(self, name: str) -> str:
        keys = attribute_keys(self.conn)
        fields = [*BUILT_IN, *keys]
        suggestion = closest(name, fields)
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        shown = ", ".join(fields[: len(BUILT_IN) + FIELDS_SHOWN])
        more = ", ..." if len(keys) > FIELDS_SHOWN else ""
        none = "" if keys else " (no contact has any attribute yet)"
        return f"unknown field {name!r}{hint} Known fields: {shown}{more}{none}"

    def check_dates(self, condition: Condition) -> None:
        """A date-shaped value must be a real date, whatever the field and `allow_unknown`."""
        if condition.name in BUILT_IN:
            return
        for value, column in _values(condition):
            if DATE.fullmatch(value):
                try:
                    date.fromisoformat(value)
                except ValueError as exc:
                    raise self.error(column, f"{value!r} is not a real date ({exc})") from None

    def check_type(self, condition: Condition, stats: AttributeStats | None) -> None:
        kind = stats.kind if stats else "text"
        for value, column in _values(condition):
            if kind == "number" and not NUMBER.fullmatch(value):
                raise self.error(
                    column,
                    f"{condition.name!r} holds numbers (every contact's value is one); "
                    f"compare it with a number such as 2, not {value!r}",
                )
            if kind == "date" and not DATE.fullmatch(value):
                raise self.error(
                    column,
                    f"{condition.name!r} holds dates (every contact's value is YYYY-MM-DD); "
                    f"compare it with a date such as 2026-10-01, not {value!r}",
                )

    def check_values(self, known: list[Condition]) -> None:
        """One statement tells which equality values match no contact."""
        tests = [
            (condition.name, value, column)
            for condition in known
            if condition.op in EQUALITY
            for value, column in _values(condition)
        ]
        found = values_exist(self.conn, [(name, value) for name, value, _ in tests])
        for (name, value, column), exists in zip(tests, found, strict=True):
            if not exists:
                self.unknown(column, self.unknown_value(name, value))

    def unknown_value(self, name: str, value: str) -> str:
        values = common_values(self.conn, name)
        suggestion = closest(value, values)
        if suggestion is not None:
            return f"no contact has {name} = {value!r}; did you mean {suggestion!r}?"
        if not values:
            return f"no contact has {name} = {value!r}, nor any {name} at all"
        shown = ", ".join(repr(v) for v in values[:VALUES_SHOWN])
        more = ", ..." if len(values) > VALUES_SHOWN else ""
        return f"no contact has {name} = {value!r}; the most common are {shown}{more}"


def _values(condition: Condition) -> list[tuple[str, int]]:
    """Each value with its column (the name's column when the parser did not record one)."""
    columns = condition.value_columns or (condition.column,) * len(condition.values)
    return list(zip(condition.values, columns, strict=True))
