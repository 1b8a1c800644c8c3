"""Retrieval: tokens (jieba + synonyms + stop words), BM25 ranking, the [0, 1] confidence, and
an index that follows the files on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.replies.knowledge import Knowledge
from worker.replies.model import Entry
from worker.replies.retrieval import Index, Retriever, Tuning
from worker.replies.tokens import STOP_WORDS, Synonyms, parse_synonyms, tokenize

ROOT = Path(__file__).resolve().parent.parent

SYNONYMS = parse_synonyms(
    """
    # a comment line
    价格 多少钱 学费 费用 price cost how_much   # canonical first
    学习群 群 group
    进群 加群 入群 join
    退款 退钱 refund
    """
)
ENTRIES = (
    Entry("课程价格：学费多少钱", "课程原价 999 元，早鸟价 699 元。", "knowledge/prices.md:3"),
    Entry("怎么进学习群", "报名后助教拉您进学习群。", "knowledge/group.md:3"),
    Entry("学习群规则", "请不要在群里发广告。", "knowledge/group.md:6"),
    Entry("退款政策", "开课后 7 天内无理由全额退款。", "knowledge/refunds.md:3"),
)


def test_the_synonym_table_maps_words_and_phrases_onto_the_first_word_of_their_line() -> None:
    assert SYNONYMS.words["学费"] == "价格" and SYNONYMS.words["price"] == "价格"
    assert SYNONYMS.canonical("prices") == "价格", "an English plural finds its singular"
    assert SYNONYMS.canonical("未知") == "未知"
    assert tokenize("How much is it?", SYNONYMS) == ["价格"]
    assert "#" not in SYNONYMS.words and "comment" not in SYNONYMS.words


def test_tokens_are_jieba_words_with_synonyms_folded_and_stop_words_dropped() -> None:
    assert tokenize("请问这个课的学费是多少钱啊？", SYNONYMS) == ["课", "价格", "价格"]
    assert tokenize("怎么加群", SYNONYMS) == ["进群"]
    assert tokenize("What's the REFUND policy", SYNONYMS) == ["退款", "policy"]
    assert tokenize("T恤多少钱", SYNONYMS) == ["t恤", "价格"], "jieba sees `T恤` before casefolding"
    assert tokenize("１２期", Synonyms()) == ["12", "期"], "full-width digits are folded"
    assert tokenize("？！。", SYNONYMS) == []
    assert {"的", "吗", "请问", "the", "is"} <= STOP_WORDS


def test_jieba_writes_no_cache_file_and_prints_nothing(tmp_path: Path) -> None:
    """jieba caches its dictionary in the temp directory and logs to stderr; siyu must work
    on a read-only host and keep stderr for its own messages."""
    code = (
        "from worker.replies.tokens import Synonyms, tokenize\n"
        "print(tokenize('怎么进学习群', Synonyms()))"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['进', '学习', '群']"
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == [], "nothing written to the temp directory"


def test_jieba_s_own_log_lines_are_silenced_even_if_its_default_tokenizer_is_used(
    tmp_path: Path,
) -> None:
    """jieba's module-level tokenizer logs "Building prefix dict ..." to stderr at DEBUG."""
    code = "import worker.replies.tokens, jieba\nprint(jieba.lcut('学习群'))"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_entry_that_answers_the_question_ranks_first() -> None:
    index = Index(ENTRIES, SYNONYMS, Tuning())
    assert index.search("这个课学费多少")[0].entry.topic == "课程价格：学费多少钱"
    assert index.search("how much does it cost?")[0].entry.topic == "课程价格：学费多少钱"
    assert index.search("报名后怎么加群")[0].entry.topic == "怎么进学习群"
    assert index.search("群里能发广告吗")[0].entry.topic == "学习群规则"
    assert index.search("可以退钱吗")[0].entry.topic == "退款政策"


def test_a_question_about_something_the_knowledge_lacks_scores_lower() -> None:
    index = Index(ENTRIES, SYNONYMS, Tuning())
    known = index.search("学费多少钱")[0].score
    half_known = index.search("T恤多少钱")[0].score
    assert known == 1.0
    assert half_known < 0.7 * known
    assert index.search("你们公司地址")[0:] == [], "no shared word: no hit at all"


def test_an_unknown_english_word_weighs_less_than_an_unknown_chinese_one() -> None:
    index = Index(ENTRIES, SYNONYMS, Tuning())
    assert index.search("refund methods")[0].score > index.search("退款方法")[0].score
    even = Index(ENTRIES, SYNONYMS, Tuning(unknown_weight_latin=1.0))
    assert even.search("refund methods")[0].score == index.search("退款方法")[0].score


def test_hits_are_sorted_best_first_and_limited_to_k() -> None:
    hits = Index(ENTRIES, SYNONYMS, Tuning()).search("学习群 群规 进群", k=2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from("学费多少钱怎么进群退款规则广告的吗TtD price refund ?？"),
        max_size=30,
    )
)
def test_every_score_is_a_confidence_between_zero_and_one(text: str) -> None:
    for hit in Index(ENTRIES, SYNONYMS, Tuning()).search(text, k=4):
        assert 0.0 < hit.score <= 1.0


def test_an_empty_knowledge_finds_nothing() -> None:
    assert Index((), SYNONYMS, Tuning()).search("学费多少钱") == []


def _write_templates(root: Path, price: str = "999", synonyms: str = "") -> Path:
    knowledge = root / "replies" / "knowledge"
    knowledge.mkdir(parents=True, exist_ok=True)
    (knowledge / "prices.md").write_text(f"## 学费多少钱\n原价 {price} 元。\n", encoding="utf-8")
    (knowledge / "group.md").write_text("## 怎么进学习群\n报名后助教拉您进群。\n", encoding="utf-8")
    (root / "replies" / "synonyms.txt").write_text(synonyms, encoding="utf-8")
    return root


def test_the_retriever_answers_from_the_knowledge_as_edited_a_moment_ago(tmp_path: Path) -> None:
    retriever = Retriever.for_templates(_write_templates(tmp_path))
    assert retriever.search("学费多少钱")[0].entry.body == "原价 999 元。"
    index = retriever.index()
    assert retriever.index() is index, "nothing changed: the index is reused"

    _write_templates(tmp_path, price="899")
    assert retriever.search("学费多少钱")[0].entry.body == "原价 899 元。"


def test_a_new_synonym_takes_effect_at_the_next_search(tmp_path: Path) -> None:
    retriever = Retriever.for_templates(_write_templates(tmp_path))
    assert retriever.search("tuition?") == []
    _write_templates(tmp_path, synonyms="学费 tuition\n")
    assert retriever.search("tuition?")[0].entry.topic == "学费多少钱"


def test_the_retriever_works_without_a_synonym_file(tmp_path: Path) -> None:
    knowledge = Knowledge(_write_templates(tmp_path) / "replies" / "knowledge")
    retriever = Retriever(knowledge, synonyms_path=None)
    assert retriever.search("怎么进学习群")[0].entry.topic == "怎么进学习群"
