"""Accuracy of the reply decisions on a labelled set of inbound messages, per category.

    python -m worker.replies.evaluate [CASES.jsonl] [--templates DIR] [--threshold T] [-v]

Each line of the cases file is `{"text", "category", "expected", "topics"?}`: `category` one of
CATEGORIES, `expected` the action (`reply`, `handoff`, `opt_out`), and for a knowledge reply
the headings of the entries that answer it (`topics`, any one of them). A case is right when
the action is the expected one and, for a knowledge reply, the answer rests on one of those
entries. The exit status is 1 when a category is below its floor (FLOORS, from issue 9), so
`make eval` can gate a change to the knowledge, the synonyms or the rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.replies.model import Action, Decision, Question
from worker.replies.pipeline import decide
from worker.replies.responder import DEFAULT_THRESHOLD, RetrievalResponder
from worker.replies.retrieval import Retriever

CATEGORIES = ("opt_out", "handoff", "bot", "injection", "knowledge", "chit_chat")
# Issue 9's floors, plus handoff requests, which are as deterministic as opt-outs.
FLOORS: Mapping[str, float] = {
    "opt_out": 1.0,
    "injection": 1.0,
    "bot": 1.0,
    "handoff": 1.0,
    "knowledge": 0.85,
}
DEFAULT_CASES = Path("tests/data/replies_eval.jsonl")


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    category: str
    expected: Action
    topics: tuple[str, ...] = ()


@dataclass
class Score:
    """One category's result: how many cases, how many right, and the wrong ones."""

    total: int = 0
    right: int = 0
    wrong: list[tuple[Case, Decision]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


def load_cases(path: Path) -> list[Case]:
    """The cases of a JSONL file; a malformed line is a ValueError naming it."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            case = Case(
                row["text"], row["category"], Action(row["expected"]), tuple(row.get("topics", ()))
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc!r}") from exc
        if case.category not in CATEGORIES:
            raise ValueError(f"{path}:{number}: category {case.category!r} not in {CATEGORIES}")
        cases.append(case)
    return cases


def is_right(case: Case, decision: Decision, topic_of: Mapping[str, str]) -> bool:
    """The expected action and, for an answer from the knowledge, one of the expected entries."""
    if decision.action is not case.expected:
        return False
    if case.expected is Action.REPLY and case.topics:
        return any(topic_of.get(source) in case.topics for source in decision.sources[:1])
    return True


def score(
    cases: Iterable[Case], decide_one: Callable[[str], Decision], topic_of: Mapping[str, str]
) -> dict[str, Score]:
    """Per category, how `decide_one` does on `cases`."""
    scores = {c: Score() for c in CATEGORIES}
    for case in cases:
        decision = decide_one(case.text)
        result = scores[case.category]
        result.total += 1
        if is_right(case, decision, topic_of):
            result.right += 1
        else:
            result.wrong.append((case, decision))
    return scores


def score_retrieval(
    cases: Sequence[Case], templates_dir: Path, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Score]:
    """`score` with the embedded default: the retrieval responder alone, no LLM."""
    retriever = Retriever.for_templates(templates_dir)
    responder = RetrievalResponder(threshold)
    topic_of = {e.source: e.topic for e in retriever.knowledge.entries()}

    def decide_one(text: str) -> Decision:
        return decide(Question(text=text, account_name="思语学堂·小林老师"), retriever, responder)

    return score(cases, decide_one, topic_of)


def below_floor(scores: Mapping[str, Score]) -> list[str]:
    """The categories with cases and an accuracy under their floor."""
    return [c for c, floor in FLOORS.items() if scores[c].total and scores[c].accuracy < floor]


def report(scores: Mapping[str, Score], verbose: bool = False) -> str:
    lines = [f"{'category':<10} {'right':>5} / {'total':<5} {'accuracy':>8}   floor"]
    for category, result in scores.items():
        floor = FLOORS.get(category)
        lines.append(
            f"{category:<10} {result.right:>5} / {result.total:<5} {result.accuracy:>8.1%}   "
            + (f"{floor:.0%}" if floor is not None else "-")
        )
        if verbose:
            for case, decision in result.wrong:
                lines.append(f"    {case.text!r}: {decision.action.value} ({decision.reason})")
    total = sum(r.total for r in scores.values())
    right = sum(r.right for r in scores.values())
    lines.append(f"{'all':<10} {right:>5} / {total:<5} {right / max(total, 1):>8.1%}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--templates", type=Path, default=Path("templates"))
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("-v", "--verbose", action="store_true", help="list the wrong cases")
    args = parser.parse_args(argv)
    scores = score_retrieval(load_cases(args.cases), args.templates, args.threshold)
    print(f"{args.cases} (retrieval responder, threshold {args.threshold:.2f})")
    print(report(scores, args.verbose))
    failing = below_floor(scores)
    if failing:
        print(f"below the floor: {', '.join(failing)}", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
