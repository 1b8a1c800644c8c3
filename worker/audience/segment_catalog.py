"""What the contacts hold, for checking an expression: set-based SQL, a few statements.

Only the fields an expression names are examined: one grouped scan of their attribute values
(`json_each` on SQLite, `jsonb_each_text` on PostgreSQL) and one statement of `EXISTS` tests
that stop at the first match. The wider look-ups (every key, the common values of a field)
run only to word an error or a note, and return at most `limit` rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, exists, func, select, true
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import TableValuedAlias

from worker.audience.segment_parser import TAG
from worker.audience.segment_sql import IsDateShaped, NumberOrNull
from worker.audience.segments import ACCOUNTS, COLUMNS, CONTACTS, OWNER, compile_test

BUILT_IN = (TAG, *COLUMNS, OWNER)  # names that are not attributes, always known
COMMON_VALUES = 1000


@dataclass(frozen=True, slots=True)
class AttributeStats:
    """How many contacts have an attribute, and how many of those values are numbers, dates."""

    contacts: int
    numbers: int
    dates: int

    @property
    def kind(self) -> str:
        """'number' or 'date' when every value is one, else 'text'."""
        if self.numbers == self.contacts:
            return "number"
        if self.dates == self.contacts:
            return "date"
        return "text"


def attribute_stats(conn: Connection, names: Collection[str]) -> dict[str, AttributeStats]:
    """The attributes among `names` that some contact has, with their value kinds."""
    if not names:
        return {}
    pairs = _attribute_pairs(conn)
    value = pairs.c.value
    numbers = func.sum(case((NumberOrNull(value).is_not(None), 1), else_=0))
    dates = func.sum(case((IsDateShaped(value), 1), else_=0))
    query = (
        select(pairs.c.key, func.count(), numbers, dates)
        .select_from(CONTACTS)
        .join(pairs, true())
        .where(pairs.c.key.in_(sorted(names)))
        .group_by(pairs.c.key)
    )
    rows = conn.execute(query).all()
    return {key: AttributeStats(int(n), int(num or 0), int(d or 0)) for key, n, num, d in rows}


def attribute_keys(conn: Connection, limit: int = COMMON_VALUES) -> list[str]:
    """The attribute names contacts have, most common first."""
    pairs = _attribute_pairs(conn)
    query = (
        select(pairs.c.key)
        .select_from(CONTACTS)
        .join(pairs, true())
        .group_by(pairs.c.key)
        .order_by(func.count().desc(), pairs.c.key)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def values_exist(conn: Connection, tests: Sequence[tuple[str, str]]) -> list[bool]:
    """For each `(name, value)`, whether some contact matches `name = value` (as compiled)."""
    if not tests:
        return []
    checks = [
        exists(select(1).select_from(CONTACTS).where(compile_test(name, "=", value))).label(f"e{i}")
        for i, (name, value) in enumerate(tests)
    ]
    return [bool(found) for found in conn.execute(select(*checks)).one()]


def common_values(conn: Connection, name: str, limit: int = COMMON_VALUES) -> list[str]:
    """The values of field `name` that contacts have, most common first."""
    return [str(v) for v in conn.execute(_values_query(conn, name).limit(limit)).scalars()]


def _values_query(conn: Connection, name: str) -> Select[Any]:
    if name == OWNER:
        owner = ACCOUNTS.c.name
        query = select(owner).join(CONTACTS, CONTACTS.c.owner_id == ACCOUNTS.c.id)
        return query.group_by(owner).order_by(func.count().desc(), owner)
    if name in COLUMNS:
        column = CONTACTS.c[name]
        return select(column).group_by(column).order_by(func.count().desc(), column)
    if name == TAG:
        items = _tag_items(conn)
        value = items.c.value
        query = select(value).select_from(CONTACTS).join(items, true())
    else:
        pairs = _attribute_pairs(conn)
        value = pairs.c.value
        query = select(value).select_from(CONTACTS).join(pairs, true())
        query = query.where(pairs.c.key == name)
    return query.group_by(value).order_by(func.count().desc(), value)


def _attribute_pairs(conn: Connection) -> TableValuedAlias:
    """`(key, value)` rows of each contact's attributes, values as text."""
    if conn.dialect.name == "postgresql":
        return func.jsonb_each_text(CONTACTS.c.attrs).table_valued("key", "value")
    return func.json_each(CONTACTS.c.attrs).table_valued("key", "value")


def _tag_items(conn: Connection) -> TableValuedAlias:
    """`value` rows of each contact's tags."""
    if conn.dialect.name == "postgresql":
        return func.jsonb_array_elements_text(CONTACTS.c.tags).table_valued("value")
    return func.json_each(CONTACTS.c.tags).table_valued("value")
