"""The checkable claims in a text: every link, contact, date, time, price, discount and number.

`extract(text)` applies the rules most specific first (links, e-mail addresses, phone
numbers, dates, relative dates, money, discounts, percentages, times, codes, weekdays, plain
numbers, then any digit left over); the span a rule takes is blanked, so the `1` inside a link
or the `20` of `20:00` is not read again as a plain number, and no digit escapes every rule.
Each claim carries canonical values, so the guardrails compare meaning, not spelling:
`699 元` = `699元` = `¥699`, `九折` = `9折`, `晚上8点` = `20:00`, `10月15日` = `10/15`.

base.py      Kind, Claim, Rule, the shared pattern pieces, NFKC normalisation
numerals.py  Arabic and Chinese numerals to exact Decimals
links.py     links, e-mail addresses, phone numbers
dates.py     dates, relative dates, times of day, weekdays
amounts.py   money, discounts, percentages, codes, plain numbers
"""

from __future__ import annotations

import re
from dataclasses import replace

from worker.replies.claims.amounts import CODE_RULE, DIGITS_RULE, MONEY_RULES, NUMBER_RULE
from worker.replies.claims.base import Claim, Kind, Rule, normalise
from worker.replies.claims.dates import DATE_RULES, RELATIVE_RULE, TIME_RULES, WEEKDAY_RULE
from worker.replies.claims.links import LINK_RULES, canonical_url

__all__ = ["RULES", "Claim", "Kind", "Rule", "canonical_url", "extract", "normalise"]

RULES: tuple[Rule, ...] = (
    *LINK_RULES,
    *DATE_RULES,
    RELATIVE_RULE,
    *MONEY_RULES,
    *TIME_RULES,
    CODE_RULE,
    WEEKDAY_RULE,
    NUMBER_RULE,
    DIGITS_RULE,
)

_BLANK = "\x00"  # never matched by any rule, and removed from input by `normalise`
_LIST_MARKER = re.compile(r"^([ \t]*)(\d{1,2}[.、)])(?!\d)", re.MULTILINE)


def extract(text: str) -> list[Claim]:
    """Every claim in `text`, in order. A list's `1.` and `2、` markers are not claims."""
    work = _LIST_MARKER.sub(lambda m: m.group(1) + _BLANK * len(m.group(2)), normalise(text))
    claims: list[Claim] = []
    for rule in RULES:
        for match in list(rule.pattern.finditer(work)):
            found = rule.build(match)
            if found is None:
                continue
            start, end = match.span()
            claims.append(replace(found, at=start))
            work = work[:start] + _BLANK * (end - start) + work[end:]
    return sorted(claims, key=lambda found: found.at)
