"""SQL constructs whose spelling differs between SQLite and PostgreSQL, with one meaning.

Each renders its arguments through the compiler, so every value stays a bound parameter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Numeric, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

# The shape of a number in an attribute: optional sign, digits, optional decimal part.
PG_NUMBER_PATTERN = r"^[+-]?[0-9]+(\.[0-9]+)?$"
# The shape of an ISO date, YYYY-MM-DD (whether it is a real date is checked in Python).
PG_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
SQLITE_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


class HasTag(FunctionElement[bool]):
    """True when the JSON list `tags` contains the string `value` (never NULL)."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, tags: ColumnElement[Any], value: ColumnElement[str]) -> None:
        super().__init__(tags, value)


class NumberOrNull(FunctionElement[Any]):
    """The numeric value of a text expression that looks like a number, else NULL.

    Guarded so PostgreSQL never attempts (and fails) a cast of a non-numeric string.
    """

    type = Numeric()
    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


class IsDateShaped(FunctionElement[bool]):
    """True when a non-NULL text expression has the shape YYYY-MM-DD."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


class Binary(FunctionElement[str]):
    """A text expression that orders by code point on both databases (SQLite's default)."""

    type = String()
    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses.clauses]


@compiles(HasTag, "postgresql")
def _has_tag_pg(element: HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    tags, value = _args(element, compiler, **kw)
    return f"({tags} @> jsonb_build_array(CAST({value} AS TEXT)))"


@compiles(HasTag, "sqlite")
def _has_tag_sqlite(element: HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    tags, value = _args(element, compiler, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({tags}) AS tag WHERE tag.value = {value})"  # noqa: S608  (compiled, bound SQL)


@compiles(NumberOrNull, "postgresql")
def _number_pg(element: NumberOrNull, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    return f"(CASE WHEN {text} ~ '{PG_NUMBER_PATTERN}' THEN CAST({text} AS NUMERIC) END)"


@compiles(NumberOrNull, "sqlite")
def _number_sqlite(element: NumberOrNull, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    # GLOB has no optional parts; these four together accept exactly PG_NUMBER_PATTERN:
    # a digit (or a sign and a digit) first, then digits and at most one dot, a digit last.
    shape = " AND ".join(
        (
            f"({text} GLOB '[0-9]*' OR {text} GLOB '[-+][0-9]*')",
            f"substr({text}, 2) NOT GLOB '*[^0-9.]*'",
            f"{text} NOT GLOB '*.*.*'",
            f"{text} GLOB '*[0-9]'",
        )
    )
    return f"(CASE WHEN {shape} THEN CAST({text} AS NUMERIC) END)"


@compiles(IsDateShaped, "postgresql")
def _date_pg(element: IsDateShaped, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    return f"({text} ~ '{PG_DATE_PATTERN}')"


@compiles(IsDateShaped, "sqlite")
def _date_sqlite(element: IsDateShaped, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    return f"({text} GLOB '{SQLITE_DATE_GLOB}')"


@compiles(Binary, "postgresql")
def _binary_pg(element: Binary, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    return f'({text} COLLATE "C")'


@compiles(Binary, "sqlite")
def _binary_sqlite(element: Binary, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = _args(element, compiler, **kw)
    return text
