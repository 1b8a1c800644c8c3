"""The shapes the reply pipeline passes between its parts.

classify (opt-out, handoff, bot question) -> retrieve (knowledge entries for the question)
-> respond (retrieval responder, or the LLM) -> guardrails (every number, date and link in
the answer must be in the facts) -> a `Decision` the reply task records and delivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    REPLY = "reply"  # send `text` to the learner
    HANDOFF = "handoff"  # a person takes over; `text` is the short holding reply
    OPT_OUT = "opt_out"  # suppress the contact everywhere; `text` is the one confirmation


@dataclass(frozen=True, slots=True)
class Entry:
    """One `## ` section of `templates/replies/knowledge/*.md`."""

    topic: str  # the heading, without `## `
    body: str  # the text under it, stripped
    source: str  # `knowledge/prices.md:12` (file and heading line), for explanations


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    score: float  # retrieval's confidence in [0, 1]: comparable with a fixed threshold


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the conversation, oldest first in a history."""

    inbound: bool  # True: the learner wrote it; False: the account (assistant or person)
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    """Everything a responder may use to answer one inbound message."""

    text: str
    account_name: str  # the account that received it: the voice of the answer
    history: Sequence[Turn] = ()
    variables: Mapping[str, str] = field(default_factory=dict)  # the campaign's --var values


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one inbound message, and why, in words an operator can read later."""

    action: Action
    text: str  # what is sent to the learner (empty: nothing is sent)
    reason: str  # e.g. "opt-out keyword '退订'", "retrieval score 0.31 < 0.45", "guardrail: ..."
    sources: tuple[str, ...] = ()  # the knowledge entries the answer rests on (Entry.source)
    withheld: str | None = None  # an answer the guardrails stopped, kept for the operator


class Responder(Protocol):
    """Answers a question from the retrieved entries only (the retrieval responder, the LLM)."""

    def respond(self, question: Question, hits: Sequence[Hit]) -> Decision: ...
