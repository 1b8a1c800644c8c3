"""Compile segment expressions to SQLAlchemy conditions over `contacts`.

Every predicate is NULL-free, so `not A` is exactly the complement of `A` and SQLite and
PostgreSQL return the same members. Values are always bound parameters.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    Engine,
    Numeric,
    String,
    Table,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from worker.audience.segment_parser import (
    TAG,
    And,
    Condition,
    Node,
    Not,
    Or,
    SegmentSyntaxError,
    parse_segment,
)
from worker.audience.segment_sql import Binary, HasTag, NumberOrNull
from worker.store import tables

__all__ = [
    "SegmentSyntaxError",
    "compile_segment",
    "compile_test",
    "conditions",
    "parse_segment",
    "segment_member_count",
]

CONTACTS: Table = tables.contacts
ACCOUNTS: Table = tables.accounts
COLUMNS = ("name", "external_id", "channel")  # NOT NULL text columns of `contacts`
OWNER = "owner"
NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")  # the same language as PG_NUMBER_PATTERN

Comparison = Callable[[Any, Any], ColumnElement[bool]]
_COMPARE: dict[str, Comparison] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compile_segment(expression: str) -> ColumnElement[bool]:
    """A boolean condition over `contacts` selecting the members of `expression`.

    Use as `select(Contact.id).where(compile_segment(expr))`; raises `SegmentSyntaxError`.
    """
    return _compile(parse_segment(expression))


def segment_member_count(engine: Engine, expression: str) -> int:
    """How many contacts `expression` selects right now."""
    query = select(func.count()).select_from(CONTACTS).where(compile_segment(expression))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def conditions(node: Node) -> Iterator[Condition]:
    """The conditions of a syntax tree, in the order they were written."""
    if isinstance(node, Condition):
        yield node
    elif isinstance(node, Not):
        yield from conditions(node.operand)
    else:
        for operand in node.operands:
            yield from conditions(operand)


def _compile(node: Node) -> ColumnElement[bool]:
    if isinstance(node, Or):
        return or_(*(_compile(operand) for operand in node.operands))
    if isinstance(node, And):
        return and_(*(_compile(operand) for operand in node.operands))
    if isinstance(node, Not):
        return not_(_compile(node.operand))
    return _condition(node)


def _condition(condition: Condition) -> ColumnElement[bool]:
    """`!=` and `not in` are the exact complements of `=` and `in`."""
    positive = {"!=": "=", "not in": "in"}.get(condition.op, condition.op)
    if positive == "in":
        matched = or_(*(compile_test(condition.name, "=", value) for value in condition.values))
    else:
        matched = compile_test(condition.name, positive, condition.values[0])
    return not_(matched) if positive != condition.op else matched


def compile_test(name: str, op: str, value: str) -> ColumnElement[bool]:
    """One NULL-free comparison: numeric when `value` is a number, else by code point."""
    if name == TAG:
        return HasTag(CONTACTS.c.tags, literal(value, String()))
    subject, nullable = _subject(name)
    compare = _COMPARE[op]
    if NUMBER.fullmatch(value):
        number = cast(literal(value, String()), Numeric())
        return func.coalesce(compare(NumberOrNull(subject), number), false())
    if op != "=":
        subject = Binary(subject)
    test = compare(subject, literal(value, String()))
    return func.coalesce(test, false()) if nullable else test


def _subject(name: str) -> tuple[ColumnElement[Any], bool]:
    """The text a name refers to, and whether it can be NULL."""
    if name in COLUMNS:
        return CONTACTS.c[name], False
    if name == OWNER:
        owner = select(ACCOUNTS.c.name).where(ACCOUNTS.c.id == CONTACTS.c.owner_id)
        return owner.scalar_subquery(), True
    return CONTACTS.c.attrs[name].as_string(), True
