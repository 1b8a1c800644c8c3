"""The fixed replies: opt-out confirmation, holding replies, the AI disclosure, courtesies.

Each is a Chinese and an English text; the English one answers a message written only in
Latin letters (`text.is_english`). All of them are configurable by building `CannedReplies`
with other texts; `{account_name}` in a text is replaced by the receiving account's name.
None states a price, date or link, so none can contradict the knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.replies.text import is_english


@dataclass(frozen=True, slots=True)
class Bilingual:
    zh: str
    en: str

    def for_message(self, message: str, account_name: str = "") -> str:
        """The text in the language of `message`, with `{account_name}` filled in (with "this
        account" when the name is unknown)."""
        english = is_english(message)
        name = account_name or ("this account" if english else "本账号")
        return (self.en if english else self.zh).replace("{account_name}", name)


def sentences(message: str, *parts: str) -> str:
    """Texts one after another, as written in the language of `message`: a space between
    English sentences, nothing between Chinese ones."""
    return (" " if is_english(message) else "").join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class CannedReplies:
    """Every text siyu sends without the knowledge. `disclosure` is the configurable
    disclosure line (DESIGN 12: the assistant never denies being an AI)."""

    opt_out: Bilingual = Bilingual(
        "好的，已为您退订，之后不会再给您发送课程消息。",
        "Done: you are unsubscribed and will not receive course messages from us again.",
    )
    holding: Bilingual = Bilingual(
        "这个问题我请同事确认后回复您。",
        "Let me check that with a colleague and get back to you.",
    )
    handoff: Bilingual = Bilingual(
        "好的，我已请同事来和您沟通，请稍等。",
        "Sure, I have asked a colleague to take over; they will reply here.",
    )
    enrolment: Bilingual = Bilingual(
        "好的，我请助教把报名链接发给您，请稍等。",
        "Great, I have asked a teaching assistant to send you the enrolment link.",
    )
    disclosure: Bilingual = Bilingual(
        "我是{account_name}的 AI 助手，不是真人。",
        "I am the AI assistant of {account_name}, not a person.",
    )
    offer_human: Bilingual = Bilingual(
        "需要真人老师的话，回复“人工”就好。",
        "Reply “human” any time and a colleague will take over.",
    )
    greeting: Bilingual = Bilingual(
        "您好，我在的，请问有什么可以帮您？",
        "Hi! How can I help?",
    )
    thanks: Bilingual = Bilingual(
        "不客气，有问题随时找我。",
        "You're welcome. Ask any time.",
    )
