"""Dates, relative dates, times of day and weekdays.

A date is (year, month, day) with None for the parts not written: `2026-10-15`, `2026 年 10 月
15 日`, `10月15日`, `10/15`, `十月十五日`, `10月`, `20号`. A time is minutes after midnight:
`20:00`, `晚上8点`, `8点半`, `八点`; without a period word, `8点` reads as 08:00 or 20:00, and
`24:00` is midnight. A relative date (`明天`, `下周一`, `月底`) is kept as written: the model has
no calendar, so such a word is only ever supported by the same word in the facts.
"""

from __future__ import annotations

import re
from decimal import Decimal

from worker.replies.claims import numerals
from worker.replies.claims.base import Claim, Kind, Rule, claim

_CN_SMALL = "零〇一二两三四五六七八九十"
_DAY = 24 * 60


def _int(text: str) -> int | None:
    """A small whole number written with digits or Chinese numerals."""
    if text.isdigit():
        return int(text)
    value = numerals.chinese(text)
    return int(value) if value is not None and value == value.to_integral_value() else None


def _date_claim(
    match: re.Match[str], year: str | None, month: str | None, day: str | None
) -> Claim | None:
    y, m, d = (_int(part) if part else None for part in (year, month, day))
    if (month and m is None) or (day and d is None):
        return None
    if (m is not None and not 1 <= m <= 12) or (d is not None and not 1 <= d <= 31):
        return None
    return claim(Kind.DATE, (y, m, d), match.group(0), y, m, d)


_N = rf"\d{{1,2}}|[{_CN_SMALL}]{{1,3}}"
_FULL_DATE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d\d)\s?(?P<sep>[-/.年])\s?(?P<m>\d{1,2})\s?(?:(?P=sep)|月)\s?"
    r"(?P<d>\d{1,2})(?!\d)\s?[日号]?"
)
_MONTH_DAY = re.compile(
    rf"(?<![\d{_CN_SMALL}])(?P<m>{_N})\s?月\s?(?P<d>{_N})\s?(?:[日号]|(?![\d{_CN_SMALL}]))"
)
_SLASH_DATE = re.compile(r"(?<![\d/.])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\d/])")
_YEAR_MONTH = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s?年\s?(?P<m>\d{1,2})\s?月(?:份)?")
_YEAR = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s?年(?!\s?\d)")
_MONTH = re.compile(rf"(?<![\d{_CN_SMALL}])(?P<m>{_N})\s?月(?:份)?(?!\s?[\d{_CN_SMALL}])")
_DAY_OF_MONTH = re.compile(rf"(?<![\d{_CN_SMALL}])(?P<d>{_N})\s?号(?!码)")


def _parts(match: re.Match[str]) -> Claim | None:
    groups = match.groupdict()
    return _date_claim(match, groups.get("y"), groups.get("m"), groups.get("d"))


_RELATIVE = re.compile(
    r"大?后天|今天|今日|今晚|明天|明日|明晚|明早|昨天|前天"
    r"|(?:(?<!一)下|这|本|上)个?(?:周|星期|礼拜)[一二三四五六日天]?|周末"
    r"|下个?月|本月|这个月|月底|月初|年底|年初"
    r"|(?<![A-Za-z])(?:today|tonight|tomorrow|yesterday|next (?:week|month)"
    r"|this (?:week|weekend|month))(?![A-Za-z])",
    re.IGNORECASE,
)


def _relative(match: re.Match[str]) -> Claim:
    return claim(Kind.RELATIVE, match.group(0).lower(), match.group(0))


_PERIODS = {
    "凌晨": 0, "早上": 0, "早晨": 0, "上午": 0, "中午": 12, "下午": 12, "傍晚": 12,
    "晚上": 12, "夜里": 12, "夜间": 12, "晚": 12, "am": 0, "pm": 12, "a.m.": 0, "p.m.": 12,
}  # fmt: skip
_MIDNIGHT_AT_12 = frozenset({"凌晨", "晚上", "夜里", "夜间", "晚", "am", "a.m."})
_PERIOD = "|".join(sorted(map(re.escape, _PERIODS), key=len, reverse=True))
_CLOCK = re.compile(
    rf"(?:(?P<period>{_PERIOD})\s?)?(?<!\d)(?P<h>\d{{1,2}}):(?P<m>\d{{2}})(?!\d)"
    rf"(?:\s?(?P<after>am|pm|a\.m\.|p\.m\.)(?![A-Za-z]))?",
    re.IGNORECASE,
)
_O_CLOCK = re.compile(
    rf"(?:(?P<period>{_PERIOD})\s?)?(?<![\d{_CN_SMALL}])(?P<h>\d{{1,2}}|[{_CN_SMALL}]{{1,3}})\s?"
    rf"[点時时](?!点)(?:(?P<half>半)|(?P<quarter>一刻|三刻)|\s?(?P<m>\d{{1,2}}|[{_CN_SMALL}]{{1,3}})\s?分?)?"
    rf"|(?<!\d)(?P<eh>\d{{1,2}})\s?(?P<after>am|pm|a\.m\.|p\.m\.)(?![A-Za-z])",
    re.IGNORECASE,
)


def _time(match: re.Match[str]) -> Claim | None:
    groups = match.groupdict()
    hour = _int(groups.get("h") or groups.get("eh") or "")
    minute = _minute(groups)
    period = (groups.get("period") or groups.get("after") or "").lower()
    if hour is None or minute is None or hour > 24 or minute > 59:
        return None
    if groups.get("h") == "一" and not period:
        return None  # `一点` is "a little", not one o'clock
    hours = _hours(hour, period)
    minutes = frozenset((h * 60 + minute) % _DAY for h in hours)
    numbers = frozenset(Decimal(n) for n in (*hours, hour % 12 or 12, minute))
    return Claim(Kind.TIME, frozenset(minutes), match.group(0), numbers)


def _hours(hour: int, period: str) -> set[int]:
    """The 24-hour readings: with a period word one, without it `8点` is 8 or 20."""
    if period:
        return {_on_clock(hour, period)}
    return {hour, hour + 12} if hour < 12 else {hour}


def _on_clock(hour: int, period: str) -> int:
    """The 24-hour hour of `hour` said with a period word: 下午3点 15, 晚上12点 0, 中午12点 12."""
    if hour == 12:
        return 0 if period in _MIDNIGHT_AT_12 else 12
    return hour + _PERIODS[period] if hour < 12 else hour


def _minute(groups: dict[str, str | None]) -> int | None:
    if groups.get("half"):
        return 30
    if quarter := groups.get("quarter"):
        return 15 if quarter == "一刻" else 45
    written = groups.get("m")
    return _int(written) if written else 0


_WEEKDAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7}
_WD = "(?:周|星期|礼拜)([一二三四五六日天])"
# `每周一次` is once a week, not Mondays.
_WEEKDAY = re.compile(
    rf"{_WD}(?:\s?(?:至|到|~|-|—)\s?(?:周|星期|礼拜)?([一二三四五六日天]))?(?![次节个遍回])"
)


def _weekday(match: re.Match[str]) -> Claim:
    first = _WEEKDAYS[match.group(1)]
    last = _WEEKDAYS[match.group(2)] if match.group(2) else first
    days = range(first, last + 1) if first <= last else (*range(first, 8), *range(1, last + 1))
    return Claim(Kind.WEEKDAY, frozenset(days), match.group(0))


DATE_RULES = (
    Rule(Kind.DATE, _FULL_DATE, _parts),
    Rule(Kind.DATE, _YEAR_MONTH, _parts),
    Rule(Kind.DATE, _MONTH_DAY, _parts),
    Rule(Kind.DATE, _SLASH_DATE, _parts),
    Rule(Kind.DATE, _YEAR, _parts),
    Rule(Kind.DATE, _MONTH, _parts),
    Rule(Kind.DATE, _DAY_OF_MONTH, _parts),
)
RELATIVE_RULE = Rule(Kind.RELATIVE, _RELATIVE, _relative)
TIME_RULES = (Rule(Kind.TIME, _CLOCK, _time), Rule(Kind.TIME, _O_CLOCK, _time))
WEEKDAY_RULE = Rule(Kind.WEEKDAY, _WEEKDAY, _weekday)
