"""The retrieval responder: the embedded default when no LLM is configured.

It says only what an operator wrote: the body of the best knowledge entry, verbatim, when
retrieval is confident enough, and otherwise a holding reply while a person takes over. It
cannot invent a price, a discount or a date, because it never writes a sentence of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.replies.canned import CannedReplies
from worker.replies.model import Action, Decision, Hit, Question

# Calibrated on tests/data/replies_dev.jsonl with bench/calibrate_replies.py (see there).
DEFAULT_THRESHOLD = 0.38


class RetrievalResponder:
    """Answers with the best entry's body if its score reaches `threshold`, else hands off."""

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, canned: CannedReplies = CannedReplies()
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        self.threshold = threshold
        self.canned = canned

    def respond(self, question: Question, hits: Sequence[Hit]) -> Decision:
        best = max(hits, key=lambda h: h.score, default=None)
        if best is None:
            return Decision(
                Action.HANDOFF,
                self.canned.holding.for_message(question.text, question.account_name),
                reason="retrieval: no knowledge entry shares a word with the question",
            )
        if best.score < self.threshold:
            return Decision(
                Action.HANDOFF,
                self.canned.holding.for_message(question.text, question.account_name),
                reason=(
                    f"retrieval: best '{best.entry.topic}' scored {best.score:.2f}"
                    f" < threshold {self.threshold:.2f}"
                ),
            )
        return Decision(
            Action.REPLY,
            best.entry.body,
            reason=(
                f"retrieval: '{best.entry.topic}' scored {best.score:.2f}"
                f" >= threshold {self.threshold:.2f}"
            ),
            sources=(best.entry.source,),
        )
