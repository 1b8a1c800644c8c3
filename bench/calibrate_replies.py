"""Calibrate the retrieval responder's threshold on the development set.

    .venv/bin/python bench/calibrate_replies.py [DEV.jsonl] [--templates DIR] [--cost-wrong N]

For every threshold from 0.05 to 0.95 it counts, over the knowledge questions of the set:
right answers, wrong answers (an answer to a question the knowledge does not cover, or from
the wrong entry), needless handoffs (the best entry did answer) and right handoffs. A wrong
answer costs `--cost-wrong` (default 3) needless handoffs: the company is liable for what is
said, and a person answering a little later is cheaper than a wrong answer at once. It prints
the table and the thresholds of least cost; their middle is the choice
(`responder.DEFAULT_THRESHOLD`).

Calibrate on `tests/data/replies_dev.jsonl`, which `make eval` does not use, then measure on
`tests/data/replies_eval.jsonl` with `make eval`: the eval set is never used to pick a number.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from worker.replies.evaluate import Case, load_cases
from worker.replies.model import Action
from worker.replies.retrieval import Retriever

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    threshold: float
    right: int
    wrong: int
    needless: int
    held: int
    accuracy: float
    cost: float


def best_hits(cases: list[Case], retriever: Retriever) -> list[tuple[float, bool, bool]]:
    """Per case: the best score, whether the best entry answers it, whether it wants a reply."""
    results = []
    for case in cases:
        hits = retriever.search(case.text, 1)
        wants_reply = case.expected is Action.REPLY
        answers = bool(hits) and wants_reply and hits[0].entry.topic in case.topics
        results.append((hits[0].score if hits else 0.0, answers, wants_reply))
    return results


def sweep(results: list[tuple[float, bool, bool]], cost_wrong: float) -> list[Row]:
    rows = []
    for step in range(5, 96):
        t = step / 100
        right = sum(1 for s, ok, _ in results if s >= t and ok)
        wrong = sum(1 for s, ok, _ in results if s >= t and not ok)
        needless = sum(1 for s, ok, _ in results if s < t and ok)
        held = sum(1 for s, ok, _ in results if s < t and not ok)
        handoffs_wanted = sum(1 for s, _, wants in results if s < t and not wants)
        accuracy = (right + handoffs_wanted) / len(results)
        rows.append(Row(t, right, wrong, needless, held, accuracy, cost_wrong * wrong + needless))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "cases", nargs="?", type=Path, default=ROOT / "tests/data/replies_dev.jsonl"
    )
    parser.add_argument("--templates", type=Path, default=ROOT / "templates")
    parser.add_argument("--cost-wrong", type=float, default=3.0)
    parser.add_argument("--every", action="store_true", help="every 0.01, not every 0.05")
    args = parser.parse_args()

    cases = [c for c in load_cases(args.cases) if c.category == "knowledge"]
    rows = sweep(best_hits(cases, Retriever.for_templates(args.templates)), args.cost_wrong)
    print(
        f"{args.cases.name}: {len(cases)} knowledge questions;"
        f" a wrong answer costs {args.cost_wrong:g} needless handoffs"
    )
    print("threshold  right  wrong  needless  right-handoff  accuracy   cost")
    for r in rows:
        if args.every or round(r.threshold * 100) % 5 == 0:
            print(
                f"{r.threshold:>9.2f}  {r.right:>5}  {r.wrong:>5}  {r.needless:>8}  {r.held:>13}"
                f"  {r.accuracy:>8.1%}  {r.cost:>5g}"
            )
    least = min(r.cost for r in rows)
    best = [r.threshold for r in rows if r.cost == least]
    middle = (best[0] + best[-1]) / 2
    print(f"least cost {least:g} at {best[0]:.2f}-{best[-1]:.2f}: threshold {middle:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
