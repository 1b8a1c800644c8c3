"""What a claim is, and the pattern pieces every kind of claim is written with."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from worker.replies.claims import numerals


class Kind(StrEnum):
    URL = "url"  # value: the link without scheme and `www.`, host lowercased
    EMAIL = "email"  # value: the address, lowercased
    PHONE = "phone"  # value: the digits, without a +86 prefix
    DATE = "date"  # value: (year | None, month | None, day | None)
    RELATIVE = "relative"  # value: a relative date word (`明天`, `下周一`), lowercased
    TIME = "time"  # values: minutes after midnight; `8点` reads as both 08:00 and 20:00
    MONEY = "money"  # value: (currency, amount)
    DISCOUNT = "discount"  # value: the fraction of the price paid, `7折` = 0.7
    PERCENT = "percent"  # value: the number before `%`
    CODE = "code"  # value: a token mixing letters and digits (coupon code, WeChat id), lowercased
    WEEKDAY = "weekday"  # values: 1 (Monday) to 7 (Sunday); a range holds every day in it
    NUMBER = "number"  # value: any other number


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable statement: its kind, its canonical values, and the text it came from."""

    kind: Kind
    values: frozenset[object]  # one value, or each reading of an ambiguous text (`8点`)
    shown: str  # as written (after NFKC), for the operator
    numbers: frozenset[Decimal] = frozenset()  # the numbers it mentions, for plain numbers
    at: int = 0  # where it starts in the normalised text


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern for one kind; `build` turns a match into a claim, or None (not a claim)."""

    kind: Kind
    pattern: re.Pattern[str]
    build: Callable[[re.Match[str]], Claim | None]


def claim(kind: Kind, value: object, shown: str, *numbers: Decimal | int | None) -> Claim:
    """A claim with one canonical value and the numbers written in it."""
    mentioned = frozenset(Decimal(n) for n in numbers if n is not None)
    return Claim(kind, frozenset({value}), shown, mentioned)


# An Arabic number: `1,299`, `6.9`, `699`.
NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# A Chinese numeral, possibly with a decimal part: `九十九`, `七点五`.
CN = f"[{numerals.CHINESE_CHARS}]+(?:点[{numerals.CHINESE_CHARS}]+)?"
# Not inside a longer number or an identifier (CJK characters are fine neighbours).
EDGE_L = r"(?<![A-Za-z0-9_])(?<!\d[.,])"
EDGE_R = r"(?![A-Za-z0-9_]|[.,]\d)"

_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\u200b-\u200f\u2060\ufeff]")


def normalise(text: str) -> str:
    """NFKC with invisible characters removed: the form every rule and comparison reads.

    NFKC turns full-width digits, `：`, `％`, `￥` and `①` into `0-9`, `:`, `%`, `¥` and `1`.
    """
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
