"""Prices, discounts, percentages, codes and plain numbers."""

from __future__ import annotations

import re
from decimal import Decimal

from worker.replies.claims import numerals
from worker.replies.claims.base import CN, EDGE_L, EDGE_R, NUM, Claim, Kind, Rule, claim

_CN_CHARS = numerals.CHINESE_CHARS
_CNY = r"元|块钱|块|圆|人民币|RMB|rmb|CNY|yuan"
_USD = r"美元|美金|刀|USD|dollars?"
_MONEY = re.compile(
    rf"(?P<cur>¥|\$|RMB|CNY|USD|人民币)\s?(?P<n1>{NUM})(?:\s?(?P<m1>[万千]))?(?:\s?(?:{_CNY}))?"
    rf"|{EDGE_L}(?P<n2>{NUM})\s?(?P<m2>[万千])?\s?(?P<unit>{_CNY}|{_USD})(?P<jiao>\d(?!\d))?"
    rf"|(?!一\s?块(?!钱))(?P<cn>{CN})\s?(?:元|块钱|块)(?P<cnjiao>[一二三四五六七八九](?![{_CN_CHARS}]))?"
    r"|(?P<free>免费|不要钱|零元)"
)


def _money(match: re.Match[str]) -> Claim | None:
    """`699 元` = `¥699` = `699块`; `9块9` 9.9; `九十九元` 99; `免费` 0. `$` is USD."""
    groups = match.groupdict()
    if groups["free"]:
        return claim(Kind.MONEY, ("CNY", Decimal(0)), match.group(0), 0)
    if groups["cn"]:
        amount, currency = numerals.chinese(groups["cn"]), "CNY"
        jiao = numerals.chinese_digits(groups["cnjiao"] or "")
    else:
        number, mult = (
            (groups["n1"], groups["m1"]) if groups["n1"] else (groups["n2"], groups["m2"])
        )
        amount, jiao = numerals.arabic(number, mult), groups["jiao"]
        marker = groups["cur"] or groups["unit"]
        currency = "USD" if re.fullmatch(rf"\$|{_USD}", marker) else "CNY"
    if amount is None:
        return None
    if jiao and amount == amount.to_integral_value():
        amount += Decimal(jiao) / 10
    return claim(Kind.MONEY, (currency, amount), match.group(0), amount)


_DISCOUNT = re.compile(
    r"(?P<half>半价|对折)"
    rf"|{EDGE_L}(?P<num>\d\.\d|\d{{1,2}})\s?折(?!扣)"
    rf"|(?P<cn>[{_CN_CHARS}]{{1,2}}(?:点[一二三四五六七八九])?)折(?!扣)"
)


def _discount(match: re.Match[str]) -> Claim | None:
    """The fraction of the price paid: `7折` 0.7, `7.5折` = `75折` = `七五折` 0.75, `半价` 0.5."""
    if match.group("half"):
        return claim(Kind.DISCOUNT, Decimal("0.5"), match.group(0), 5)
    written = match.group("num")
    if written is None:
        cn = match.group("cn")
        number = numerals.chinese(cn) if "点" in cn else None
        written = str(number) if number is not None else numerals.chinese_digits(cn)
    if not written:
        return None
    tenths = Decimal(written) if "." in written or len(written) == 1 else Decimal(written) / 10
    if not 0 < tenths < 10:
        return None
    return claim(Kind.DISCOUNT, tenths / 10, match.group(0), Decimal(written), tenths)


_PERCENT = re.compile(rf"{EDGE_L}(?P<num>{NUM})\s?%|百分之(?P<cn>{NUM}|{CN})")


def _percent(match: re.Match[str]) -> Claim | None:
    """`50%` = `百分之五十` = `百分之50`."""
    written = match.group("num") or match.group("cn")
    value = numerals.arabic(written) if written[0].isdigit() else numerals.chinese(written)
    if value is None:
        return None
    return claim(Kind.PERCENT, value, match.group(0), value)


# A token that mixes letters and digits: a coupon code, a WeChat or QQ id, `Python3`.
_CODE = re.compile(
    r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Za-z])(?=[A-Za-z0-9_-]*\d)"
    r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?![A-Za-z0-9_])"
)


def _code(match: re.Match[str]) -> Claim:
    return claim(Kind.CODE, match.group(0).lower(), match.group(0))


# A Chinese numeral is a claim when it is long (`十六`, `九十九`) or counts something (`三天`).
# A lone `一` is not: it is part of too many words (`一下`, `一起`, `一个`).
_UNITS = (
    r"个月|个小时|个工作日|工作日|小时|分钟|课时|天|周|节|次|期|人|名|位|年|岁|堂|门|讲|章|课|倍"
)
_NUMBER = re.compile(
    rf"{EDGE_L}(?P<num>{NUM})(?:\s?(?P<mult>[万千亿](?![{_CN_CHARS}])))?{EDGE_R}"
    rf"|(?P<counted>[{_CN_CHARS}]{{2,}}|[两三四五六七八九十])(?=\s?(?:{_UNITS}))"
    rf"|(?P<long>[{_CN_CHARS}]{{2,}})"
)


def _number(match: re.Match[str]) -> Claim | None:
    if match.group("num"):
        value = numerals.arabic(match.group("num"), match.group("mult"))
    else:
        value = numerals.chinese(match.group("counted") or match.group("long"))
        if value is None or (match.group("long") and value < 10):
            return None  # not a numeral (`千万`, `一一`), or a small one inside an idiom
    if value is None:
        return None
    return claim(Kind.NUMBER, value, match.group(0), value)


def _digits(match: re.Match[str]) -> Claim:
    return claim(Kind.NUMBER, Decimal(match.group(0)), match.group(0), Decimal(match.group(0)))


MONEY_RULES = (
    Rule(Kind.MONEY, _MONEY, _money),
    Rule(Kind.DISCOUNT, _DISCOUNT, _discount),
    Rule(Kind.PERCENT, _PERCENT, _percent),
)
CODE_RULE = Rule(Kind.CODE, _CODE, _code)
NUMBER_RULE = Rule(Kind.NUMBER, _NUMBER, _number)
# The safety net, last: a digit no other rule took (`1.2.3`, `.5`) is still checked.
DIGITS_RULE = Rule(Kind.NUMBER, re.compile(r"\d+"), _digits)
