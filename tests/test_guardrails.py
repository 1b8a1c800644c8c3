"""The deterministic guardrails: every claim in a reply must be in the facts; no denying being AI.

The facts below are the shipped sample knowledge's prices, schedule, refunds and group rules,
copied here so that editing the operator's knowledge files cannot change what these test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.replies.claims import Kind
from worker.replies.guardrails import Facts, check, denies_being_ai, facts_for, guard
from worker.replies.model import Action, Decision, Entry, Hit, Question, Turn

KNOWLEDGE = [
    "价格和优惠\n课程原价 999 元。\n早鸟价 699 元，2026 年 10 月 15 日 24:00 前报名有效。\n"
    "两人同行各减 100 元，可与早鸟价同时使用。\n支持微信支付和支付宝，可开具电子发票。",
    "开课时间和课表\n第 12 期 2026 年 10 月 20 日开课，共 8 周 16 节直播课。\n"
    "每周二、周四 20:00-21:30 直播（北京时间）。\n开课前 3 天发送上课链接和课前资料。",
    "退款政策\n开课后 7 天内（含第 7 天）无理由全额退款。\n退款原路返回，3-5 个工作日到账。",
    "学习群规则\n群内答疑时间：每天 9:00-22:00，晚上提问第二天上午回复。\n"
    "客服电话 400-820-1234，邮箱 help@siyu-edu.cn。",
    "活动\n老学员续报打 8 折，推荐好友立减百分之十。周一至周五 10:00 前报名当天拉群。\n"
    "优惠码 SIYU2026。学习资料：www.siyu-edu.cn/docs。助教微信号：siyu_helper。",
]
VARIABLES = {
    "course_url": "https://edu.example.com/c/py-data?from=wechat#outline",
    "group_price": "599",
    "group_url": "https://work.weixin.qq.com/gm/3f9a2c1d8848",
}
FACTS = Facts.of(KNOWLEDGE, VARIABLES)

SUPPORTED = [
    # prices, however written
    "早鸟价 699 元，原价 999 元。",
    "早鸟价￥699",
    "早鸟价¥699元",
    "早鸟价699元",
    "早鸟价 699块",
    "早鸟价六百九十九元",
    "两人同行每人再减100元",
    "拼团价 599 元",  # a bare-number campaign variable is a price
    "早鸟价 699 元，两人同行各减 100 元，相当于每人 599 元",
    # dates
    "10月15日24:00前报名享早鸟价",
    "2026-10-15 前报名有效",
    "2026/10/15前报名",
    "10/15 前报名",
    "2026年10月15日截止",
    "十月十五日截止",
    "10月20日开课",
    "20号开课",
    "10月开课",
    "2026年开课",
    # times
    "每周二、周四晚上8点直播",
    "直播时间 20:00-21:30",
    "晚上8点到9点半",
    "晚上八点开始",
    "8点开始",
    "答疑时间是早上9点到晚上10点",
    "10月15日晚上12点前",  # 24:00
    # weekdays
    "每周二和周四上课",
    "星期二、星期四",
    "周三上午10点前报名当天拉群",  # 周一至周五 includes Wednesday
    # plain numbers and counts
    "共 8 周 16 节课",
    "共八周十六节课",
    "开课后7天内可以全额退款",
    "开课后七天内可以全额退款",
    "退款 3-5 个工作日到账",
    "开课前3天发链接",
    "第12期",
    # discounts and percentages
    "老学员续报打8折",
    "老学员续报八折",
    "推荐好友立减10%",
    "推荐好友立减百分之十",
    # links, contacts, codes
    "课程介绍：https://edu.example.com/c/py-data?from=wechat#outline",
    "课程介绍：https://edu.example.com/c/py-data?from=wechat#outline，点击报名",
    "也可以直接打开 edu.example.com 看看",
    "进群：https://work.weixin.qq.com/gm/3f9a2c1d8848",  # its digits are part of an allowed link
    "资料在 https://www.siyu-edu.cn/docs/",
    "资料在 siyu-edu.cn/docs",
    "客服电话 4008201234",
    "客服电话 400 820 1234",
    "可以发邮件到 HELP@siyu-edu.cn",
    "报名时填优惠码 SIYU2026",
    "加助教微信 siyu_helper 拉群",
    # words only
    "支持微信支付和支付宝，可以开电子发票。",
    "我是 AI 助手，需要的话可以帮您转给真人老师。",
    "我是AI助手，不是真人，可以帮您转人工。",
    "1. 先报名\n2. 等助教拉群",
    "您看一下课程介绍，有问题随时问我～",
    "好的，稍等一下，我一起帮您看看",
    "千万不要错过早鸟价哦",
    "万一赶不上直播，可以看回放",
]

WITHHELD = [
    # the two examples
    ("现在只要 99 元", "99 元"),
    ("现在只要 99 元，点这里 https://pay.example.cn/99", "99 元"),
    ("报名链接 https://pay.example.cn/early-bird", "https://pay.example.cn/early-bird"),
    # invented prices
    ("现在只要九十九元", "九十九元"),
    ("今天特价 ¥599.9", "¥599.9"),
    ("现在 1,299 元", "1,299 元"),
    ("现在只要 6.9 元", "6.9 元"),
    ("9块9秒杀", "9块9"),
    ("两人同行各减 200 元", "200 元"),
    ("原价 999 元，现价 899 元", "899 元"),
    ("只要 12 元", "12 元"),  # 12 is in the facts, but not as a price
    ("现在免费试听", "免费"),
    ("$99 only", "$99"),
    # invented discounts and percentages
    ("可以给您打7折", "7折"),
    ("可以打九折", "九折"),
    ("现在五折", "五折"),
    ("现在半价", "半价"),
    ("特批一折", "一折"),
    ("七五折", "七五折"),
    ("立减百分之五十", "百分之五十"),
    ("立减 50%", "50%"),
    # invented dates and times
    ("10月16日截止", "10月16日"),
    ("10/16截止", "10/16"),
    ("2027年10月20日开课", "2027年10月20日"),
    ("2026-11-15 开课", "2026-11-15"),
    ("11月开课", "11月"),
    ("晚上7点直播", "晚上7点"),
    ("19:30 开始", "19:30"),
    ("周六直播", "周六"),
    ("周一到周日都有直播", "周一到周日"),
    ("下周一开课", "下周一"),
    ("明天截止", "明天"),
    ("报名tomorrow截止", "tomorrow"),
    ("今晚8点直播", "今晚"),
    ("月底前报名有优惠", "月底"),
    # invented numbers, contacts and codes
    ("可以分 6 期付款", "6"),
    ("可以分六期付款", "六"),
    ("名额只剩 37 个", "37"),
    ("有 1.2万 人学过", "1.2万"),
    ("版本 0.5.1", "1"),  # 0 and 5 are in the facts (24:00, 3-5)
    ("加微信 wx_siyu2027 领资料", "wx_siyu2027"),
    ("报名时填优惠码 VIP50", "VIP50"),
    ("加微信号：siyu_vip 领资料", "siyu_vip"),
    ("打电话 13812345678", "13812345678"),
    ("打电话 +86 138 1234 5678", "+86 138 1234 5678"),
    ("发邮件到 sales@siyu-edu.cn", "sales@siyu-edu.cn"),
    ("加群 t.cn/A6x9kq", "t.cn/A6x9kq"),
    ("访问 www.python-course.cn 报名", "www.python-course.cn"),
    ("课程介绍：https://edu.example.com/c/py-data", "https://edu.example.com/c/py-data"),
    ("资料在 siyu-edu.cn/docs/v2", "siyu-edu.cn/docs/v2"),
    (
        "进群：https://work.weixin.qq.com/gm/3f9a2c1d8849",
        "https://work.weixin.qq.com/gm/3f9a2c1d8849",
    ),
    ("全角也一样：９９元", "99元"),
]


@pytest.mark.parametrize("text", SUPPORTED)
def test_a_reply_whose_claims_are_all_in_the_facts_passes(text: str) -> None:
    verdict = check(text, FACTS)
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize(("text", "claim"), WITHHELD)
def test_a_reply_with_a_claim_the_facts_do_not_make_is_withheld(text: str, claim: str) -> None:
    verdict = check(text, FACTS)
    assert not verdict.ok
    assert claim in [c.shown.strip() for c in verdict.unsupported]
    assert f"'{claim}'" in verdict.reason


def test_the_reason_names_each_unsupported_claim_once() -> None:
    verdict = check("现在 99 元，99 元，还送 3 节课和 t.cn/x1", FACTS)
    assert verdict.reason == (
        "guardrail: '99 元', 't.cn/x1' are not in the knowledge or the campaign's variables"
    )
    many = check("1 折、2 折、3 折、4 折", FACTS)
    assert many.reason == (
        "guardrail: '1 折', '2 折', '3 折' and 1 more are not in the knowledge or the "
        "campaign's variables"
    )


DENIALS = [
    "我是真人哦",
    "放心，这边是真人在回复您",
    "我是一个真实的人",
    "我不是机器人",
    "我可不是 AI",
    "这不是自动回复",
    "我是人工客服",
    "我就是陈老师本人",
    "I'm a real person",
    "好的I'm a real person",
    "I am a human",
    "I'm not a bot",
    "This is not an AI, I promise",
    "You're talking to a real human",
]
ADMISSIONS = [
    "我是 AI 助手，可以帮您转给真人老师",
    "我是AI助手，不是真人",
    "您问我是不是机器人：是的，我是 AI 助手",
    "我是人工智能助手",
    "需要的话我帮您转人工",
    "I'm an AI assistant; I can get a person for you",
    "I am not a human, I'm an AI assistant",
]


@pytest.mark.parametrize("text", DENIALS)
def test_a_reply_that_claims_to_be_a_person_is_withheld(text: str) -> None:
    verdict = check(text, FACTS)
    assert denies_being_ai(text) is not None
    assert not verdict.ok
    assert verdict.reason.startswith("guardrail: the reply claims to be a person (")


@pytest.mark.parametrize("text", ADMISSIONS)
def test_a_reply_that_says_it_is_an_ai_passes(text: str) -> None:
    assert denies_being_ai(text) is None


def test_the_learners_messages_are_never_facts() -> None:
    question = Question(
        "客服说可以打1折，链接是 t.cn/abc，对吗？",
        "思语学堂·小林老师",
        history=(Turn(True, "上次说 99 元"), Turn(False, "好的")),
    )
    hits = [Hit(Entry("价格和优惠", "早鸟价 699 元。", "knowledge/courses.md:9"), 0.9)]
    facts = facts_for(question, hits)
    for text in ("可以打1折", "链接是 t.cn/abc", "对，99 元"):
        assert not check(text, facts).ok, text
    assert check("早鸟价 699 元", facts).ok


def test_the_facts_are_the_retrieved_entries_variables_and_the_account_name() -> None:
    question = Question("?", "小林老师2号", variables={"link": "https://x.example.com/a"})
    hits = [Hit(Entry("开课 10 月 20 日", "早鸟价 699 元。", "k.md:1"), 0.9)]
    facts = facts_for(question, hits)
    assert check("我是小林老师2号的 AI 助手，10月20日开课，https://x.example.com/a", facts).ok
    assert not check("退款 3-5 个工作日到账", facts).ok  # a fact that was not retrieved


def test_guard_withholds_and_keeps_the_text_for_the_operator() -> None:
    kept = guard("只要 99 元", FACTS, holding_text="稍等", sources=("k.md:1",), reason="r")
    assert kept == Decision(
        Action.HANDOFF,
        "稍等",
        "guardrail: '99 元' is not in the knowledge or the campaign's variables",
        ("k.md:1",),
        withheld="只要 99 元",
    )
    sent = guard("早鸟价 699 元", FACTS, holding_text="稍等", sources=("k.md:1",), reason="r")
    assert sent == Decision(Action.REPLY, "早鸟价 699 元", "r", ("k.md:1",))


@pytest.mark.parametrize("section", KNOWLEDGE)
def test_the_knowledge_supports_itself(section: str) -> None:
    assert check(section, Facts.of([section])).ok


@given(st.text(max_size=80), st.text(max_size=80))
def test_an_invented_price_anywhere_in_any_text_is_withheld(before: str, after: str) -> None:
    assert not check(f"{before} 98765 元 {after}", FACTS).ok


@given(st.text(max_size=120))
def test_any_text_supports_its_own_claims(text: str) -> None:
    verdict = check(text, Facts.of([text]))
    assert verdict.unsupported == ()


def test_a_bare_number_variable_is_a_price_but_not_a_discount() -> None:
    assert Facts.of([], {"price": "1,299"}).values[Kind.MONEY] == {("CNY", Decimal(1299))}
    assert check("只要 1299 元", Facts.of([], {"price": "1,299"})).ok
    assert not check("打 8 折", Facts.of([], {"rate": "8"})).ok
