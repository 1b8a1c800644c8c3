"""Numbers as people write them in Chinese and English replies, parsed to exact `Decimal`s.

`arabic("1,299")` and `chinese("一千二百九十九")` are both 1299. Chinese numerals are parsed only
when well formed (`九十九`, `两千`, `一万零五百`, `七点五`), so idioms built from numeral
characters (`千万` "by all means", `万一` "in case", `一一` "one by one") are not numbers.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
DIGITS |= {"五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
MULTIPLIERS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}

# For regular expressions: the characters a Chinese numeral is written with.
CHINESE_CHARS = "零〇一二两三四五六七八九十百千万亿"


def arabic(text: str, multiplier: str | None = None) -> Decimal | None:
    """`1,299` -> 1299, `6.90` -> 6.9, `1.2` with multiplier `万` -> 12000; None if malformed."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if multiplier:
        value *= MULTIPLIERS[multiplier]
    return value


def chinese(text: str) -> Decimal | None:
    """A well-formed Chinese numeral, optionally with a decimal part after `点`; else None."""
    whole, dot, fraction = text.partition("点")
    value = _integer(whole)
    if value is None:
        return None
    if not dot:
        return Decimal(value)
    digits = chinese_digits(fraction)
    return Decimal(f"{value}.{digits}") if digits else None


def chinese_digits(text: str) -> str | None:
    """Numeral characters read digit by digit: `七五` -> "75" (as in `七五折`); else None."""
    if not text or any(ch not in DIGITS for ch in text):
        return None
    return "".join(str(DIGITS[ch]) for ch in text)


def _integer(text: str) -> int | None:
    """`九十九` -> 99, `十五` -> 15, `一千零一` -> 1001, `三万` -> 30000; None if ill-formed.

    Rules: a unit needs a digit before it (except a leading `十`), units inside a section
    (below 万) strictly decrease, and two digits never follow each other except after `零`.
    """
    if not text:
        return None
    total, section, digit = 0, 0, None
    last_unit, last_big = 10_000, 10**12  # the smallest units so far, to keep the order
    previous = ""
    for index, ch in enumerate(text):
        if ch in DIGITS:
            if digit is not None and previous not in "零〇":
                return None
            digit = DIGITS[ch]
        elif ch in SMALL_UNITS:
            unit = SMALL_UNITS[ch]
            if unit >= last_unit or (digit is None and not (ch == "十" and index == 0)):
                return None
            section += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        elif ch in BIG_UNITS:
            big = BIG_UNITS[ch]
            if index == 0 or previous in BIG_UNITS or big >= last_big:
                return None
            total += (section + (digit or 0)) * big
            section, digit, last_unit, last_big = 0, None, 10_000, big
        else:
            return None
        previous = ch
    return total + section + (digit or 0)
