"""Tokenizer and recursive-descent parser for segment expressions (CONTRACT.md, `--where`).

    expression := disjunction END
    disjunction := conjunction ("or" conjunction)*
    conjunction := negation ("and" negation)*
    negation    := "not" negation | "(" disjunction ")" | NAME test
    test        := OPERATOR value | ["not"] "in" "(" value ("," value)* ")"
    value       := BARE | 'quoted' | "quoted"

Keywords are case-insensitive; NAME is `\\w+`; `==` is accepted for `=`. Lexing is driven by
the parser, so a bare value is any run of characters other than whitespace, parentheses, commas
and quotes (`a=b` too); a value that is a keyword must be quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from worker.errors import UserError

KEYWORDS = frozenset({"and", "or", "not", "in"})
OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")  # longest first; "==" means "="
ORDERING = frozenset({"<", "<=", ">", ">="})
TAG = "tag"
_WORD = re.compile(r"\w+")
_BARE = re.compile(r"""[^\s(),'"]+""")


class SegmentError(UserError):
    """A problem at a 1-based column of an expression, reported on one line."""

    def __init__(self, source: str, column: int, problem: str) -> None:
        self.column = column
        shown = re.sub(r"\s", " ", source)  # one line, columns unchanged
        super().__init__(f"segment expression: column {column}: {problem} in: {shown}")


class SegmentSyntaxError(SegmentError):
    """An expression that does not parse; the message names the 1-based column."""


@dataclass(frozen=True, slots=True)
class Condition:
    """`name op value`, or `name [not] in (values...)` with op 'in' / 'not in'.

    The 1-based columns of the name and of each value serve error messages only.
    """

    name: str
    op: str
    values: tuple[str, ...]
    column: int = field(default=0, compare=False)
    value_columns: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Condition | Not | And | Or


class _Scanner:
    """The character stream: each method skips leading whitespace, then tries one token."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def column(self) -> int:
        """The 1-based column of the next token."""
        while self.pos < len(self.source) and self.source[self.pos].isspace():
            self.pos += 1
        return self.pos + 1

    def error(self, problem: str, column: int | None = None) -> SegmentSyntaxError:
        return SegmentSyntaxError(self.source, column or self.column(), problem)

    def at_end(self) -> bool:
        return self.column() > len(self.source)

    def peek_word(self) -> str | None:
        self.column()
        found = _WORD.match(self.source, self.pos)
        return found.group() if found else None

    def keyword(self, word: str) -> bool:
        """Consume `word` (any case) when it is the next whole word."""
        found = self.peek_word()
        if found is None or found.lower() != word:
            return False
        self.pos += len(found)
        return True

    def symbol(self, text: str) -> bool:
        self.column()
        if not self.source.startswith(text, self.pos):
            return False
        self.pos += len(text)
        return True

    def operator(self) -> str | None:
        found = next((op for op in OPERATORS if self.symbol(op)), None)
        return "=" if found == "==" else found

    def name(self) -> str | None:
        found = self.peek_word()
        if found is None or found.lower() in KEYWORDS:
            return None
        self.pos += len(found)
        return found

    def value(self) -> str | None:
        """A quoted value (backslash escapes any character) or a bare one that isn't a keyword."""
        self.column()
        if self.pos < len(self.source) and self.source[self.pos] in "'\"":
            return self._quoted()
        found = _BARE.match(self.source, self.pos)
        if found is None or found.group().lower() in KEYWORDS:
            return None
        self.pos = found.end()
        return found.group()

    def _quoted(self) -> str:
        start, quote = self.pos, self.source[self.pos]
        chars: list[str] = []
        i = start + 1
        while i < len(self.source) and self.source[i] != quote:
            if self.source[i] == "\\" and i + 1 < len(self.source):
                i += 1
            chars.append(self.source[i])
            i += 1
        if i >= len(self.source):
            raise self.error(f"expected a closing {quote} for the value opened here", start + 1)
        self.pos = i + 1
        return "".join(chars)


class _Parser:
    """One method per grammar rule; each returns the node it parsed or raises."""

    def __init__(self, source: str) -> None:
        self.scan = _Scanner(source)

    def expression(self) -> Node:
        if self.scan.at_end():
            raise self.scan.error("expected a condition such as 'tag = vip'")
        node = self.disjunction()
        if not self.scan.at_end():
            if self.scan.symbol(")"):
                raise self.scan.error("found ')' without a matching '('", self.scan.pos)
            raise self.scan.error("expected 'and', 'or' or the end of the expression")
        return node

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.scan.keyword("or"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while self.scan.keyword("and"):
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Node:
        if self.scan.keyword("not"):
            return Not(self.negation())
        opened = self.scan.column()
        if self.scan.symbol("("):
            node = self.disjunction()
            if not self.scan.symbol(")"):
                raise self.scan.error(f"expected ')' to close the '(' at column {opened}")
            return node
        name_column = self.scan.column()
        name = self.scan.name()
        if name is None:
            raise self.scan.error("expected a condition such as 'tag = vip'")
        return self.test(name, name_column)

    def test(self, name: str, name_column: int) -> Node:
        column = self.scan.column()
        if self.scan.keyword("not"):
            if not self.scan.keyword("in"):
                raise self.scan.error("expected 'in' after 'not'")
            return self.listed(name, "not in", name_column)
        if self.scan.keyword("in"):
            return self.listed(name, "in", name_column)
        op = self.scan.operator()
        if op is None:
            raise self.scan.error(
                f"expected an operator (=, !=, <, <=, >, >=, in, not in) after {name!r}"
            )
        if name == TAG and op in ORDERING:
            raise self.scan.error(
                "expected =, !=, in or not in after 'tag' (tags have no order)", column
            )
        value, value_column = self.value(f"after {op!r}")
        return Condition(name, op, (value,), column=name_column, value_columns=(value_column,))

    def listed(self, name: str, op: str, name_column: int) -> Condition:
        values, columns = self.value_list()
        return Condition(name, op, values, column=name_column, value_columns=columns)

    def value(self, where: str) -> tuple[str, int]:
        """The next value and its column."""
        column = self.scan.column()
        found = self.scan.value()
        if found is None:
            keyword = self.scan.peek_word()
            hint = f" (quote {keyword!r} to use it as a value)" if keyword else ""
            raise self.scan.error(f"expected a value {where}{hint}")
        return found, column

    def value_list(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """The values of `( v, ... )` and their columns."""
        opened = self.scan.column()
        if not self.scan.symbol("("):
            raise self.scan.error("expected '(' after 'in'")
        items = [self.value("in the list")]
        while self.scan.symbol(","):
            items.append(self.value("after ','"))
        if not self.scan.symbol(")"):
            raise self.scan.error(f"expected ',' or ')' in the list opened at column {opened}")
        values, columns = zip(*items, strict=True)
        return values, columns


def parse_segment(source: str) -> Node:
    """The syntax tree of `source`; raises `SegmentSyntaxError` naming the column."""
    return _Parser(source).expression()
