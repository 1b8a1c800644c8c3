"""Deterministic rules for the messages no responder may answer: opt-outs, requests for a
person, and questions about whether the account is a bot (prompt injection: `injection.py`;
plain courtesy: `courtesy.py`).

Each detector returns a `Rule` (which rule fired and the text that fired it, for the Decision's
`reason`) or None. They run on normalised text (`text.normalise`: NFKC + casefold, so `ＴＤ`,
`Td` and `td` are one) and, where a rule is about the whole message, on its compact form
(`text.compact`: letters and digits only, so `退订。` and `T D!` count as `退订` and `td`).

Opt-out rules (DESIGN 12), tried in this order:
1. The whole message is opt-out keywords and nothing else: `退订`, `退定` (the common typo),
   `取消订阅`, `TD`, `T`, `STOP`, `unsubscribe`, `unsub`, alone or run together (`TD退订`,
   `回复TD`, copied from the footer of a message). At most one code: `TT` is a crying face.
2. A keyword other than the one-letter codes, wrapped only in politeness or how-do-I words:
   `请帮我退订`, `我要退订`, `退订，谢谢`, `怎么退订`, `unsubscribe me please`, `stop it`.
   The codes `T` and `TD` count only alone, so `T恤多少钱` and `TD是什么` are not opt-outs; nor
   are `STOPWATCH` or `退订课程` (in Chinese that also means cancelling an order: a refund).
3. A stop-sending phrase anywhere: `不要再发了`, `别再给我发消息了`, `请勿打扰`, `不想再收到`,
   `stop sending`, `don't message me`, `remove me from`, `opt out`, `unsubscribe`.
Negation: `我不想退订` matches none of these (`不想` is not a politeness word), and an English
`unsubscribe` after `not`/`don't`/`never` is ignored. Rule 3's phrases are themselves negative
(`不要再发`), so they are not negated again. `不要发广告` (a question about group rules) is not
a stop-sending phrase: only `发` followed by 了/消息/短信/这些... or nothing is.

Handoff requests: asking for a person (`人工` but not `人工智能`, `转人工`, `真人客服`, `找助教`,
`客服`, `human`, `agent`, `talk to a person`), complaints (`投诉`, `complaint`), a refund to
carry out (`我要退款`; a question such as `能退款吗` is answered from the knowledge), and a bare
wish to enrol (`报名`, `我要报名`: the knowledge promises that an assistant sends the link).
Identity questions (`你是真人吗`, `are you human?`) are bot questions, not requests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from worker.replies.text import compact, normalise


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule that fired: `name` says which, `matched` is the text that fired it."""

    name: str
    matched: str

    def __str__(self) -> str:
        return f"{self.name} '{self.matched}'"


def alternatives(*patterns: str) -> re.Pattern[str]:
    """One regex matching any of `patterns` (each readable on its own line)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def words(*items: str) -> str:
    """A regex alternation of literal words, longest first so a longer word wins."""
    return "|".join(re.escape(w) for w in sorted(items, key=len, reverse=True))


def first_rule(rules: Sequence[tuple[str, re.Pattern[str]]], text: str) -> Rule | None:
    """The first of `rules` whose pattern occurs in `text`."""
    for name, pattern in rules:
        found = pattern.search(text)
        if found:
            return Rule(name, found.group(0).strip())
    return None


# --- opt-out ---------------------------------------------------------------------------------
_CODES = words("td", "t")
_KEYWORDS = words("退订", "退定", "取消订阅", "unsubscribe", "unsub", "stop")
_BEFORE = words(
    *("请", "麻烦你", "麻烦", "帮我", "给我", "我要", "我想", "我需要", "想", "要", "回复"),
    *("怎么", "怎样", "如何", "please", "pls", "plz", "iwantto", "idliketo", "iwouldliketo"),
    *("howdoi", "howcani", "howto", "canyou", "canyouplease"),
)
_AFTER = words(
    *("谢谢你", "谢谢", "谢了", "一下", "了", "吧", "啊", "呀", "哦", "吗", "掉", "我"),
    *("消息", "短信", "信息", "推送", "thankyou", "thanks", "thx", "please", "pls", "plz"),
    *("now", "me", "it", "all", "fromthislist", "fromthelist", "fromyourlist"),
)
_OPT_OUT_ALONE = re.compile(  # the lookahead: at least one keyword or code, not `回复` alone
    f"(?:回复)?(?=(?:{_KEYWORDS}|{_CODES}))(?:{_KEYWORDS})*(?:{_CODES})?(?:{_KEYWORDS})*"
)
_OPT_OUT_WRAPPED = re.compile(
    f"(?:{_BEFORE})*(?:{_KEYWORDS}|{_CODES})*({_KEYWORDS})(?:{_KEYWORDS}|{_CODES})*(?:{_AFTER})*"
)
_WRAPPED_MAX_CHARS = 40  # politeness wraps short messages; a longer one needs rule 3
_STOP_SENDING_ZH = alternatives(
    r"(?:不要|别|勿|停止|不准|不许)再?(?:给我|跟我|向我)?(?:发|推送|群发)"
    r"(?:了|消息|信息|短信|这些|这种|这类|过来|$)",
    r"(?:请勿|不要|别再?)(?:打扰|骚扰)",
    r"(?:不想|不要|不愿意|不希望)再?(?:收到|接收|接到)",
    r"取消订阅|取消推送|关闭推送|拒收",
)
_STOP_SENDING_EN = alternatives(
    r"\b(?:stop|quit|cease)\s+(?:sending|messaging|texting|contacting|spamming|emailing)\b",
    r"\b(?:don'?t|do\s+not|never)\s+(?:message|text|contact|email|spam|bother)\s+me\b",
    r"\bremove\s+me\s+from\b",
    r"\bopt\s*-?\s*out\b",
    r"\bunsubscribe\b",
)
_NEGATED_EN = re.compile(r"\b(?:not|don'?t|never|no)\s+(?:want\s+to\s+|wish\s+to\s+)?unsubscribe\b")


def opt_out(text: str) -> Rule | None:
    """The opt-out rule that `text` satisfies (see the module docstring), or None."""
    short = compact(text)
    if _OPT_OUT_ALONE.fullmatch(short):
        return Rule("opt-out keyword", short)
    wrapped = _OPT_OUT_WRAPPED.fullmatch(short) if len(short) <= _WRAPPED_MAX_CHARS else None
    if wrapped:
        return Rule("opt-out keyword", wrapped.group(1))
    found = _STOP_SENDING_ZH.search(short)
    if found:
        return Rule("opt-out phrase", found.group(0))
    spaced = normalise(text)
    found = _STOP_SENDING_EN.search(spaced)
    if found and not _NEGATED_EN.search(spaced):
        return Rule("opt-out phrase", found.group(0))
    return None


# --- handoff requests ------------------------------------------------------------------------
_STAFF_ZH = words("助教", "老师", "工作人员", "负责人", "经理", "主管", "班主任")
_HANDOFF_ZH = (
    ("handoff request", re.compile(r"转人工|人工(?!智能)|真人客服|(?<!智能)客服(?!机器人)")),
    (
        "handoff request",
        alternatives(
            r"(?:要|找|换|转|叫|接)(?:个|一个|一下)?真人",
            r"^真人$|真人(?:来|回复|回答|服务)",
            f"(?:找|叫|联系|转|换)(?:一下|个|一个)?(?:你们的?)?(?:{_STAFF_ZH})",
        ),
    ),
    ("complaint", re.compile(r"投诉|举报")),
    (
        "refund request",
        re.compile(r"(?:我要|我想|我需要|申请|给我|帮我|马上|立即|立刻|赶紧|快点?)退(?:款|钱|费)"),
    ),
    (
        "enrolment request",
        re.compile(r"^(?:我|我们)?(?:要|想|想要|确定|决定|直接|现在)*报名(?:了|吧|啊|呀|谢谢)*$"),
    ),
)
_PERSON_EN = (
    r"(?:a\s+|an\s+|the\s+|your\s+|some\s+)?(?:real\s+)?"
    r"(?:human|person|agent|someone|somebody|operator|representative|staff|teacher|manager)"
)
_HANDOFF_EN = (
    (
        "handoff request",
        alternatives(
            rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+{_PERSON_EN}\b",
            r"\b(?:connect|transfer|put)\s+me\s+(?:to|with|through)\b",
            r"\b(?:get|need|want)\s+(?:me\s+)?(?:a\s+|an\s+)?"
            r"(?:human|real\s+person|agent|operator|representative)\b",
            r"\b(?:customer\s+(?:service|support)|live\s+(?:agent|chat|person)|human\s+agent)\b",
            r"^(?:a\s+|an\s+)?(?:human|agent|operator|real\s+person|person|representative)"
            r"(?:\s+(?:please|pls|now))?\W*$",
            r"\b(?:human|agent|real\s+person)\s+(?:please|pls)\b",
        ),
    ),
    ("complaint", re.compile(r"\bcomplain(?:t|ts)?\b")),
    (
        "refund request",
        alternatives(
            r"\b(?:i\s+want|i'd\s+like|give\s+me|i\s+need)\s+(?:a\s+|my\s+)?(?:refund|money\s+back)\b",
            r"\brefund\s+me\b",
        ),
    ),
    (
        "enrolment request",
        re.compile(
            r"^(?:please\s+)?(?:sign\s+me\s+up|i\s+(?:want|would\s+like|'d\s+like)\s+to\s+"
            r"(?:enroll?|sign\s+up|register))(?:\s+please)?\W*$"
        ),
    ),
)


def handoff_request(text: str) -> Rule | None:
    """The request for a person (or for what only a person can do) in `text`, or None."""
    return first_rule(_HANDOFF_ZH, compact(text)) or first_rule(_HANDOFF_EN, normalise(text))


# --- bot questions ---------------------------------------------------------------------------
_MACHINE_ZH = words("机器人", "ai", "人工智能", "程序", "自动回复", "chatgpt", "gpt", "bot", "机器")
_BEING_ZH = words("真人", "真的人", "人类", "活人", "智能客服") + "|" + _MACHINE_ZH
_BOT_ZH = alternatives(
    r"(?:你|您|你们|这|这个|这边|对面|对方)(?:到底|究竟|真的)?(?:是不是|是否是?|是)(?:一个|个)?"
    f"(?:{_BEING_ZH}|人(?=吗|么|嘛|吧|啊|呀|$|还是))",
    f"(?:是不是|是否|是)(?:{_MACHINE_ZH})在?(?:回复|回答|聊天|发的|回的)",
    f"^(?:是|是不是)?(?:{_MACHINE_ZH})(?:吗|吧|么|嘛|呀|啊)?$",
    r"^(?:是|是不是)?真人(?:吗|么|嘛|吧)$",
    f"(?:真人|人|{_MACHINE_ZH})还是(?:真人|人|{_MACHINE_ZH})",
)
_MACHINE_EN = r"(?:bot|robot|ai|machine|chatbot|chatgpt|gpt|automated|computer|program)"
_BOT_EN = alternatives(
    rf"\bare\s+(?:you|u)\s+(?:a\s+|an\s+)?(?:real\s+)?(?:{_MACHINE_EN}|human|person|real)\b",
    r"\b(?:is\s+this|is\s+it|am\s+i\s+(?:talking|chatting|speaking|writing)\s+(?:to|with))"
    rf"\s+(?:a\s+|an\s+)?(?:real\s+)?(?:{_MACHINE_EN}|human|person)\b",
    rf"^(?:a\s+|an\s+)?{_MACHINE_EN}\s*\?+$",
    rf"\b(?:human|person)\s+or\s+(?:a\s+|an\s+)?{_MACHINE_EN}\b",
    rf"\b{_MACHINE_EN}\s+or\s+(?:a\s+)?(?:human|person)\b",
)


def bot_question(text: str) -> Rule | None:
    """A question about whether the learner is talking to a bot or a person, or None."""
    found = _BOT_ZH.search(compact(text)) or _BOT_EN.search(normalise(text))
    return Rule("bot question", found.group(0)) if found else None
