"""The reply evaluation (issue 9's acceptance): a labelled set of inbound messages, and the
floors the embedded default (retrieval responder, no LLM) must meet on it. `make eval` prints
the same figures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from worker.replies.evaluate import (
    CATEGORIES,
    Case,
    below_floor,
    is_right,
    load_cases,
    main,
    report,
    score_retrieval,
)
from worker.replies.knowledge import load_entries
from worker.replies.model import Action, Decision

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests/data/replies_eval.jsonl"
DEV = ROOT / "tests/data/replies_dev.jsonl"


def test_the_eval_set_is_large_covers_every_category_and_names_real_entries() -> None:
    cases = load_cases(EVAL)
    assert len(cases) >= 80
    per_category = Counter(c.category for c in cases)
    assert set(per_category) == set(CATEGORIES)
    assert all(n >= 10 for n in per_category.values()), per_category
    assert len({c.text for c in cases}) == len(cases), "a message listed twice"
    topics = {e.topic for e in load_entries(ROOT / "templates/replies/knowledge")}
    for case in cases:
        if case.category == "knowledge" and case.expected is Action.REPLY:
            assert case.topics and set(case.topics) <= topics, case
    english = [c for c in cases if c.text.isascii()]
    assert len(english) >= 20, "Chinese and English, as learners write"


def test_the_calibration_set_shares_no_message_with_the_eval_set() -> None:
    """The threshold is chosen on the dev set (bench/calibrate_replies.py); the eval set only
    measures it."""
    assert not {c.text for c in load_cases(DEV)} & {c.text for c in load_cases(EVAL)}


def test_the_retrieval_responder_alone_meets_every_floor() -> None:
    scores = score_retrieval(load_cases(EVAL), ROOT / "templates")
    assert below_floor(scores) == [], report(scores, verbose=True)
    for category in ("opt_out", "injection", "bot"):
        assert scores[category].accuracy == 1.0, report(scores, verbose=True)
    assert scores["knowledge"].accuracy >= 0.85


def test_an_answer_from_the_wrong_entry_is_wrong_even_if_the_action_is_right() -> None:
    case = Case("学费多少钱", "knowledge", Action.REPLY, ("课程价格：学费多少钱",))
    topic_of = {"knowledge/a.md:1": "课程价格：学费多少钱", "knowledge/b.md:1": "怎么进学习群"}
    right = Decision(Action.REPLY, "…", "r", sources=("knowledge/a.md:1",))
    wrong_entry = Decision(Action.REPLY, "…", "r", sources=("knowledge/b.md:1",))
    handoff = Decision(Action.HANDOFF, "…", "r")
    assert is_right(case, right, topic_of)
    assert not is_right(case, wrong_entry, topic_of)
    assert not is_right(case, handoff, topic_of)


def test_a_malformed_case_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"text": "退订", "category": "opt_out", "expected": "opt_out"}\n{"text": "x"}\n'
    )
    with pytest.raises(ValueError, match=r"cases\.jsonl:2"):
        load_cases(path)


def test_make_eval_fails_when_a_category_is_below_its_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cases.jsonl"
    rows = [
        {"text": "退订", "category": "opt_out", "expected": "opt_out"},
        {"text": "你们公司地址在哪", "category": "knowledge", "expected": "reply", "topics": ["x"]},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert main([str(path), "--templates", str(ROOT / "templates")]) == 1
    out = capsys.readouterr()
    assert "opt_out" in out.out and "100.0%" in out.out
    assert "below the floor: knowledge" in out.err
