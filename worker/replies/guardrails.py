"""Deterministic checks on an outgoing reply (DESIGN decision 12): code, not another prompt.

1. Every claim in the reply (link, e-mail, phone, date, relative date, time, price, discount,
   percentage, code, weekday, number; see `worker.replies.claims`) must be supported by the
   facts: the retrieved knowledge entries and the campaign's variables. The learner's own
   messages are never facts: a learner who writes "1 折" does not license the assistant to
   repeat it.
2. The reply must not claim to be a person ("我是真人", "不是机器人", "I'm a real person").

A reply that fails is withheld: the conversation goes to a person, the learner gets the
holding reply, and the withheld text is kept in the decision for the operator.

What "supported" means, kind by kind: a price, discount, percentage, phone, e-mail or
relative date needs the same canonical value in the facts (`699 元` supports `¥699`, `九折`
supports `9折`); a link needs the same link (a bare host is supported by any link on that
host); a date needs a fact date agreeing on every part the reply states (`10月15日` is
supported by `2026 年 10 月 15 日`, `2026年10月15日` is not supported by `10月15日`); a time
needs one of its readings (`8点` by `20:00`); weekdays need every day they name (a fact's
`周一至周五` supports `周三`); a code needs the same token; a plain number needs the same
number written anywhere in the facts, in any form (`7 天` supports `七天`, `20:00` supports
`20`). A campaign variable that is a bare number (`price=699`) also supports it as a price.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from worker.replies.claims import Claim, Kind, extract, normalise
from worker.replies.claims.base import NUM
from worker.replies.model import Action, Decision, Hit, Question

_MAX_NAMED = 3

# A reply that says it is a person. `不是真人` ("not a person") and `是不是机器人` (echoing the
# learner's question) are not denials; `是真人` and `不是机器人` are.
_ZH_DENIALS = (
    r"(?<!不)(?<!是不)(?<!的)是(?:一个|一位|个|位)?(?:真人|真实的人|活人|人类|真正的人|真的人)",
    r"(?<!不)是人工(?!智能)(?:客服|服务|回复)?",
    r"(?<!是)(?:不是|并非|并不是|才不是|可不是|绝不是|不算)\s?(?:一个|个)?\s?"
    r"(?:机器人|ai|人工智能|自动回复|程序|bot|智能客服|机器|聊天机器人)",
    r"(?:我|这边)就?是[^\s，。,.!?！？]{0,8}本人",
)
_BOT = r"(?:bot|robot|ai|machine|chatbot|program|automated)"
_EN_DENIALS = (
    r"i(?:'m|’m| am)\s+(?:an?\s+)?(?:real|actual|living)\s+(?:person|human)",
    r"i(?:'m|’m| am)\s+(?:a\s+)?human",
    rf"(?:i(?:'m|’m| am)|this is|it's|it is)\s+not\s+(?:an?\s+)?{_BOT}",
    rf"(?:this|it) isn't\s+(?:an?\s+)?{_BOT}",
    r"you(?:'re| are)\s+(?:talking|chatting)\s+(?:to|with)\s+(?:a\s+)?(?:real|live)\s+"
    r"(?:person|human)",
)
_DENIALS = re.compile(
    "|".join([*_ZH_DENIALS, *(rf"(?<![A-Za-z]){en}(?![A-Za-z])" for en in _EN_DENIALS)]),
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(rf"\s*(?:{NUM})\s*")


def denies_being_ai(text: str) -> str | None:
    """The phrase in which `text` claims to be a person (or not an AI), or None."""
    match = _DENIALS.search(normalise(text))
    return match.group(0) if match else None


Date = tuple[int | None, int | None, int | None]


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a reply may state, as canonical claims plus the normalised text."""

    values: Mapping[Kind, frozenset[object]]  # every canonical value of each kind
    numbers: frozenset[Decimal]  # every number written anywhere, in any form
    text: str  # normalised and lowercased: for codes and weekdays as written

    @classmethod
    def of(cls, knowledge: Iterable[str], variables: Mapping[str, str] | None = None) -> Facts:
        """Facts from knowledge texts and campaign variables (their values, not their names)."""
        texts = [*knowledge, *(variables or {}).values()]
        claims = [c for text in texts for c in extract(text)]
        values: dict[Kind, set[object]] = {}
        for found in claims:
            values.setdefault(found.kind, set()).update(found.values)
        for value in (variables or {}).values():  # `price=699` is a price too
            if _BARE_NUMBER.fullmatch(value := normalise(value)):
                amount = Decimal(value.strip().replace(",", ""))
                values.setdefault(Kind.MONEY, set()).add(("CNY", amount))
        return cls(
            values={kind: frozenset(found) for kind, found in values.items()},
            numbers=frozenset(n for c in claims for n in c.numbers),
            text="\n".join(normalise(text).lower() for text in texts),
        )

    def supports(self, found: Claim) -> bool:
        """Whether the facts state what `found` states (the rules are in the module docstring)."""
        known = self.values.get(found.kind, frozenset())
        if found.kind is Kind.URL:
            hosts = {
                (url[0], "") for url in self.values.get(Kind.URL, ()) if isinstance(url, tuple)
            }
            return found.values <= known | hosts
        if found.kind is Kind.DATE:
            return all(any(_agrees(said, fact) for fact in known) for said in found.values)
        if found.kind is Kind.TIME:
            return bool(found.values & known)
        if found.kind is Kind.WEEKDAY:
            return found.values <= known or normalise(found.shown) in self.text
        if found.kind is Kind.CODE:
            return _has_token(self.text, found.shown.lower())
        if found.kind is Kind.NUMBER:
            return found.values <= self.numbers
        return found.values <= known


def _agrees(said: object, fact: object) -> bool:
    """A date agrees with a fact date on every part it states (None: not stated)."""
    if not (isinstance(said, tuple) and isinstance(fact, tuple)):
        return False
    return all(part is None or part == known for part, known in zip(said, fact, strict=True))


def _has_token(text: str, token: str) -> bool:
    return re.search(rf"(?<![a-z0-9_-]){re.escape(token)}(?![a-z0-9_-])", text) is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one reply: what the facts don't support, and any denial."""

    unsupported: tuple[Claim, ...] = ()
    denial: str | None = None

    @property
    def ok(self) -> bool:
        return not self.unsupported and self.denial is None

    @property
    def reason(self) -> str:
        """Why the reply was withheld, naming what it said; empty when it passes."""
        if self.denial is not None:
            return f"guardrail: the reply claims to be a person ({self.denial!r})"
        if not self.unsupported:
            return ""
        shown = list(dict.fromkeys(c.shown.strip() for c in self.unsupported))
        named = ", ".join(repr(s) for s in shown[:_MAX_NAMED])
        if len(shown) > _MAX_NAMED:
            named += f" and {len(shown) - _MAX_NAMED} more"
        verb = "is" if len(shown) == 1 else "are"
        return f"guardrail: {named} {verb} not in the knowledge or the campaign's variables"


def check(text: str, facts: Facts) -> Verdict:
    """Check one outgoing reply against the facts."""
    unsupported = tuple(c for c in extract(text) if not facts.supports(c))
    return Verdict(unsupported, denies_being_ai(text))


def facts_for(question: Question, hits: Sequence[Hit]) -> Facts:
    """The facts for one question: the retrieved entries, the campaign's variables, and the
    account's own name. Never the learner's messages."""
    knowledge = [question.account_name]
    knowledge += [f"{hit.entry.topic}\n{hit.entry.body}" for hit in hits]
    return Facts.of(knowledge, question.variables)


def guard(
    text: str, facts: Facts, *, holding_text: str, sources: tuple[str, ...], reason: str
) -> Decision:
    """A reply of `text` if it passes the checks; else a handoff that keeps `text` withheld."""
    verdict = check(text, facts)
    if verdict.ok:
        return Decision(Action.REPLY, text, reason, sources)
    return Decision(Action.HANDOFF, holding_text, verdict.reason, sources, withheld=text)
