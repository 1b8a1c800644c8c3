"""`LLMResponder`: the model answers from the retrieved entries; the guardrails get the last word.

Any failure to get a usable answer (error, timeout, garbage, refusal, the wrong format) hands
the conversation to a person with a holding reply, and the decision's reason says what
happened. A reply goes out only if every number, date and link in it is in the facts and it
does not claim to be a person (`worker.replies.guardrails`); else it is withheld, kept in the
decision, and the conversation handed off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from worker.render import TemplateError
from worker.replies.guardrails import Facts, check, facts_for, guard
from worker.replies.llm.answer import parse_answer
from worker.replies.llm.client import LLMError, Message
from worker.replies.model import Action, Decision, Hit, Question
from worker.replies.prompt import PromptBuilder

log = logging.getLogger(__name__)

HOLDING_REPLY = "这个问题我请同事确认后回复您。"
MAX_REPLY_CHARS = 1000  # the persona asks for three sentences; far longer is not an answer


class Completer(Protocol):
    """What the responder needs of a chat client (`ChatClient`)."""

    def complete(self, messages: Sequence[Message]) -> str: ...


class LLMResponder:
    """Implements `Responder` with an LLM behind the prompt and the guardrails."""

    def __init__(
        self,
        client: Completer,
        prompt: PromptBuilder,
        *,
        holding_text: str = HOLDING_REPLY,
        disclosure: str = "",
        max_reply_chars: int = MAX_REPLY_CHARS,
    ) -> None:
        if not holding_text.strip():
            raise ValueError("holding_text must not be empty: a handoff still answers the learner")
        self.client = client
        self.prompt = prompt
        self.holding_text = holding_text
        self.disclosure = disclosure.strip()
        self.max_reply_chars = max_reply_chars

    def respond(self, question: Question, hits: Sequence[Hit]) -> Decision:
        sources = tuple(dict.fromkeys(hit.entry.source for hit in hits))
        try:
            messages = self.prompt.messages(question, hits)
        except TemplateError as exc:
            return self._handoff(f"persona: {exc}", sources)
        try:
            answer = parse_answer(self.client.complete(messages))
        except LLMError as exc:
            log.warning("no usable answer from the LLM (%s): handing off", type(exc).__name__)
            return self._handoff(f"llm: {exc}", sources)
        facts = facts_for(question, hits)
        text = answer.clean_text
        if answer.hands_off:
            return self._model_handoff(text, facts, sources)
        if not text:
            return self._handoff("llm: the reply is empty", sources)
        if len(text) > self.max_reply_chars:
            reason = f"llm: a reply of {len(text):,} characters (at most {self.max_reply_chars:,})"
            return replace(self._handoff(reason, sources), withheld=text)
        reason = f"llm: answered from {len(hits)} retrieved entr{'y' if len(hits) == 1 else 'ies'}"
        decision = guard(
            text, facts, holding_text=self.holding_text, sources=sources, reason=reason
        )
        if decision.action is Action.REPLY:
            return replace(decision, text=self._disclosed(text))
        return decision

    def _model_handoff(self, text: str, facts: Facts, sources: tuple[str, ...]) -> Decision:
        """The model asked for a person: its own holding words if they pass the guardrails."""
        reason = "llm: the model handed the question to a person"
        if not text:
            return self._handoff(reason, sources)
        verdict = check(text, facts)
        if verdict.ok:
            return Decision(Action.HANDOFF, self._disclosed(text), reason, sources)
        return replace(self._handoff(f"{reason}; {verdict.reason}", sources), withheld=text)

    def _handoff(self, reason: str, sources: tuple[str, ...]) -> Decision:
        return Decision(Action.HANDOFF, self.holding_text, reason, sources)

    def _disclosed(self, text: str) -> str:
        """`text` with the disclosure line appended (once), when one is configured."""
        if not self.disclosure or self.disclosure in text:
            return text
        return f"{text}\n{self.disclosure}"
