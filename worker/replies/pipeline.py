"""`decide`: what to do with one inbound message, in the order the issue fixes.

1. opt-out (`classify.opt_out`): suppress the contact, one confirmation line;
2. a request for a person (`classify.handoff_request`): the human queue, a short holding
   reply (with the AI disclosure first if the message also asked whether this is a bot);
3. a bot question (`classify.bot_question`): the disclosure and how to reach a person;
4. prompt injection (`injection.injection`): the human queue, never a responder;
5. plain courtesy (`courtesy.courtesy`): a courtesy back, or nothing for an acknowledgement;
6. everything else: retrieve the knowledge and let the responder answer or hand off.
Steps 1-5 are deterministic rules; only step 6 depends on the responder (retrieval or LLM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.replies.canned import CannedReplies, sentences
from worker.replies.classify import bot_question, handoff_request, opt_out
from worker.replies.courtesy import Courtesy, courtesy
from worker.replies.injection import injection
from worker.replies.knowledge import KnowledgeError
from worker.replies.model import Action, Decision, Hit, Question, Responder

DEFAULT_TOP_K = 3


class Searcher(Protocol):
    """Finds the knowledge entries for a question (`retrieval.Retriever`)."""

    def search(self, text: str, k: int = DEFAULT_TOP_K) -> Sequence[Hit]: ...


def decide(
    question: Question,
    searcher: Searcher,
    responder: Responder,
    canned: CannedReplies = CannedReplies(),
    top_k: int = DEFAULT_TOP_K,
) -> Decision:
    """The Decision for `question` (see the module docstring for the order)."""
    text, name = question.text, question.account_name
    decided = by_rule(text, name, canned)
    if decided is not None:
        return decided
    try:
        hits = searcher.search(text, top_k)
    except KnowledgeError as exc:
        holding = canned.holding.for_message(text, name)
        return Decision(Action.HANDOFF, holding, f"knowledge unreadable: {exc}")
    return responder.respond(question, hits)


def by_rule(text: str, name: str, canned: CannedReplies = CannedReplies()) -> Decision | None:
    """Steps 1-5: the Decision a deterministic rule makes for `text`, or None (a question for
    the knowledge). `name` is the receiving account's, for the disclosure."""
    rule = opt_out(text)
    if rule:
        return Decision(Action.OPT_OUT, canned.opt_out.for_message(text, name), f"opt-out: {rule}")

    rule = handoff_request(text)
    if rule:
        promise = canned.enrolment if rule.name == "enrolment request" else canned.handoff
        reply = promise.for_message(text, name)
        if bot_question(text):
            reply = sentences(text, canned.disclosure.for_message(text, name), reply)
        return Decision(Action.HANDOFF, reply, f"handoff: {rule}")

    rule = bot_question(text)
    if rule:
        disclosure = canned.disclosure.for_message(text, name)
        reply = sentences(text, disclosure, canned.offer_human.for_message(text, name))
        return Decision(Action.REPLY, reply, f"disclosure: {rule}")

    rule = injection(text)
    if rule:
        return Decision(
            Action.HANDOFF, canned.holding.for_message(text, name), f"injection: {rule}"
        )

    kind = courtesy(text)
    if kind is Courtesy.GREETING:
        return Decision(Action.REPLY, canned.greeting.for_message(text, name), "courtesy: greeting")
    if kind is Courtesy.THANKS:
        return Decision(Action.REPLY, canned.thanks.for_message(text, name), "courtesy: thanks")
    if kind is Courtesy.ACKNOWLEDGEMENT:
        return Decision(Action.REPLY, "", "courtesy: acknowledgement, nothing to send")
    return None
