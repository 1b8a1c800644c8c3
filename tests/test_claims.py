"""Claims as the guardrails see them: what counts, and the canonical value each one has."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.replies.claims import Kind, canonical_url, extract
from worker.replies.claims.numerals import arabic, chinese, chinese_digits


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("九十九", 99),
        ("十五", 15),
        ("二十一", 21),
        ("一百", 100),
        ("两千", 2000),
        ("一千二百九十九", 1299),
        ("一千零一", 1001),
        ("一万零五百", 10500),
        ("三十万", 300_000),
        ("一亿两千万", 120_000_000),
        ("七点五", Decimal("7.5")),
        ("零", 0),
        ("千万", None),  # "by all means"
        ("万一", None),  # "in case"
        ("一一", None),  # "one by one"
        ("十百", None),
        ("九点", None),
        ("好", None),
    ],
)
def test_chinese_numerals_are_parsed_only_when_well_formed(
    text: str, value: int | Decimal | None
) -> None:
    assert chinese(text) == (None if value is None else Decimal(value))


def test_arabic_numbers_and_digit_by_digit_numerals() -> None:
    assert arabic("1,299") == 1299
    assert arabic("6.90") == Decimal("6.9")
    assert arabic("1.2", "万") == 12000
    assert chinese_digits("七五") == "75"
    assert chinese_digits("七十") is None


@pytest.mark.parametrize(
    ("text", "kind", "values"),
    [
        ("¥699", Kind.MONEY, {("CNY", Decimal(699))}),
        ("699 元", Kind.MONEY, {("CNY", Decimal(699))}),
        ("699块钱", Kind.MONEY, {("CNY", Decimal(699))}),
        ("RMB 699", Kind.MONEY, {("CNY", Decimal(699))}),
        ("九十九元", Kind.MONEY, {("CNY", Decimal(99))}),
        ("9块9", Kind.MONEY, {("CNY", Decimal("9.9"))}),
        ("1.2万元", Kind.MONEY, {("CNY", Decimal(12000))}),
        ("$99", Kind.MONEY, {("USD", Decimal(99))}),
        ("免费", Kind.MONEY, {("CNY", Decimal(0))}),
        ("7折", Kind.DISCOUNT, {Decimal("0.7")}),
        ("7.5折", Kind.DISCOUNT, {Decimal("0.75")}),
        ("75折", Kind.DISCOUNT, {Decimal("0.75")}),
        ("七五折", Kind.DISCOUNT, {Decimal("0.75")}),
        ("七点五折", Kind.DISCOUNT, {Decimal("0.75")}),
        ("九折", Kind.DISCOUNT, {Decimal("0.9")}),
        ("一折", Kind.DISCOUNT, {Decimal("0.1")}),
        ("半价", Kind.DISCOUNT, {Decimal("0.5")}),
        ("对折", Kind.DISCOUNT, {Decimal("0.5")}),
        ("百分之五十", Kind.PERCENT, {Decimal(50)}),
        ("50％", Kind.PERCENT, {Decimal(50)}),
        ("2026-10-15", Kind.DATE, {(2026, 10, 15)}),
        ("2026 年 10 月 15 日", Kind.DATE, {(2026, 10, 15)}),
        ("10月15号", Kind.DATE, {(None, 10, 15)}),
        ("十月十五日", Kind.DATE, {(None, 10, 15)}),
        ("10/15", Kind.DATE, {(None, 10, 15)}),
        ("2026年10月", Kind.DATE, {(2026, 10, None)}),
        ("20号", Kind.DATE, {(None, None, 20)}),
        ("20:00", Kind.TIME, {20 * 60}),
        ("20：00", Kind.TIME, {20 * 60}),
        ("24:00", Kind.TIME, {0}),
        ("晚上8点", Kind.TIME, {20 * 60}),
        ("下午3点一刻", Kind.TIME, {15 * 60 + 15}),
        ("晚上12点", Kind.TIME, {0}),
        ("中午12点", Kind.TIME, {12 * 60}),
        ("8点半", Kind.TIME, {8 * 60 + 30, 20 * 60 + 30}),
        ("八点", Kind.TIME, {8 * 60, 20 * 60}),
        ("8pm", Kind.TIME, {20 * 60}),
        ("周二", Kind.WEEKDAY, {2}),
        ("星期天", Kind.WEEKDAY, {7}),
        ("周五至周一", Kind.WEEKDAY, {5, 6, 7, 1}),
        ("下周一", Kind.RELATIVE, {"下周一"}),
        ("明天", Kind.RELATIVE, {"明天"}),
        ("Tomorrow", Kind.RELATIVE, {"tomorrow"}),
        ("https://Edu.Example.com/c/?a=1", Kind.URL, {("edu.example.com", "/c?a=1")}),
        ("HTTP://www.siyu.cn/", Kind.URL, {("siyu.cn", "")}),
        ("t.cn/A6x9", Kind.URL, {("t.cn", "/A6x9")}),
        ("help@Siyu.cn", Kind.EMAIL, {"help@siyu.cn"}),
        ("+86 138-1234-5678", Kind.PHONE, {"13812345678"}),
        ("400-820-1234", Kind.PHONE, {"4008201234"}),
        ("010-12345678", Kind.PHONE, {"01012345678"}),
        ("VIP50", Kind.CODE, {"vip50"}),
        ("微信号：siyu_edu", Kind.CODE, {"siyu_edu"}),
        ("1,299", Kind.NUMBER, {Decimal(1299)}),
        ("6.9", Kind.NUMBER, {Decimal("6.9")}),
        ("１２", Kind.NUMBER, {Decimal(12)}),
        ("②", Kind.NUMBER, {Decimal(2)}),
        ("十六节", Kind.NUMBER, {Decimal(16)}),
        ("三天", Kind.NUMBER, {Decimal(3)}),
        ("两人", Kind.NUMBER, {Decimal(2)}),
        ("1.2万", Kind.NUMBER, {Decimal(12000)}),
    ],
)
def test_each_claim_has_one_canonical_form(text: str, kind: Kind, values: set[object]) -> None:
    [found] = extract(text)
    assert (found.kind, found.values) == (kind, values)


@pytest.mark.parametrize(
    "text",
    [
        "好一点",
        "一点点",
        "我们一块学习",
        "一起",
        "稍等一下",
        "看一下周二的课",  # not `下周二`
        "千万别错过",
        "万一",
        "每周一次",  # once a week, not Mondays
        "有折扣吗",
        "零基础",
        "1. 报名\n2. 进群",
        "pandas.DataFrame 和 Node.js",
        "三心二意",
    ],
)
def test_words_made_of_numeral_characters_are_not_claims(text: str) -> None:
    assert [c for c in extract(text) if c.kind is not Kind.WEEKDAY] == []
    if text == "看一下周二的课":
        assert [c.kind for c in extract(text)] == [Kind.WEEKDAY]


def test_a_span_is_read_once_by_the_most_specific_rule() -> None:
    claims = extract("早鸟价 699 元，10月15日 20:00-21:30，详见 https://x.example.com/a/12")
    assert [c.kind for c in claims] == [Kind.MONEY, Kind.DATE, Kind.TIME, Kind.TIME, Kind.URL]


def test_no_digit_escapes_every_rule() -> None:
    claims = extract("版本 1.2.3，编号 .5，a1b")
    assert [c.shown for c in claims] == ["1", "2", "3", "5", "a1b"]


def test_a_link_ends_where_chinese_text_or_punctuation_begins() -> None:
    [found] = extract("链接https://x.example.com/a?b=1，点击报名。")
    assert found.shown == "https://x.example.com/a?b=1"
    assert canonical_url("x.example.com/a/") == ("x.example.com", "/a")
