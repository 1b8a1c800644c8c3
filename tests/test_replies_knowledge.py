"""Loading `templates/replies/knowledge/*.md`, and seeing an operator's edit at the next reply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.replies import knowledge as knowledge_module
from worker.replies.knowledge import Knowledge, KnowledgeError, load_entries, parse_entries

ROOT = Path(__file__).resolve().parent.parent


def test_each_level_two_heading_is_an_entry_with_its_file_and_line() -> None:
    text = (
        "# 课程资料\n"
        "写给运营的说明，不是条目。\n"
        "\n"
        "## 学费多少钱\n"
        "原价 999 元。\n"
        "\n"
        "早鸟价 699 元。\n"
        "### 细则\n"
        "两人同行各减 100 元。\n"
        "## 空标题\n"
        "\n"
        "## 怎么进群 \n"
        "报名后助教拉您进群。\n"
    )
    entries = parse_entries(text, "prices.md")
    assert [(e.topic, e.source) for e in entries] == [
        ("学费多少钱", "knowledge/prices.md:4"),
        ("怎么进群", "knowledge/prices.md:12"),
    ]
    assert entries[0].body == "原价 999 元。\n\n早鸟价 699 元。\n### 细则\n两人同行各减 100 元。"
    assert entries[1].body == "报名后助教拉您进群。"


def test_files_load_in_name_order_with_or_without_a_bom(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("## 乙\n二\n", encoding="utf-8")
    (tmp_path / "a.md").write_bytes("## 甲\n一\n".encode("utf-8-sig"))
    (tmp_path / "notes.txt").write_text("## 不是知识\n", encoding="utf-8")
    assert [e.topic for e in load_entries(tmp_path)] == ["甲", "乙"]
    assert load_entries(tmp_path / "missing") == ()


def test_a_file_that_is_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "gbk.md").write_bytes("## 价格\n999 元\n".encode("gb18030"))
    with pytest.raises(KnowledgeError, match=r"gbk\.md: not UTF-8"):
        load_entries(tmp_path)


def test_the_shipped_knowledge_covers_the_worked_example_course() -> None:
    entries = load_entries(ROOT / "templates/replies/knowledge")
    text = "\n".join(f"{e.topic}\n{e.body}" for e in entries)
    facts = ["999 元", "699 元", "2026 年 10 月 15 日 24:00", "2026 年 10 月 20 日", "回放"]
    facts += ["学习群", "退款", "证书", "电脑", "发票", "如何报名", "陈老师"]
    for fact in facts:
        assert fact in text, fact
    assert len({e.topic for e in entries}) == len(entries), "two entries share a heading"


def test_an_edit_is_seen_by_the_next_call_without_a_restart(tmp_path: Path) -> None:
    page = tmp_path / "prices.md"
    page.write_text("## 学费多少钱\n原价 999 元。\n", encoding="utf-8")
    knowledge = Knowledge(tmp_path)
    first = knowledge.entries()
    assert first[0].body == "原价 999 元。"
    assert knowledge.entries() is first, "an unchanged directory is not reloaded"

    page.write_text("## 学费多少钱\n原价 899 元，限时。\n", encoding="utf-8")
    assert knowledge.entries()[0].body == "原价 899 元，限时。"


def test_a_same_size_rewrite_within_one_timestamp_tick_is_still_seen(tmp_path: Path) -> None:
    """The racy case: a coarse file system gives the rewrite the same mtime and the size is
    the same, so the stat cannot tell; the contents must."""
    page = tmp_path / "prices.md"
    page.write_text("## 学费多少钱\n原价 999 元。\n", encoding="utf-8")
    stat = page.stat()
    knowledge = Knowledge(tmp_path)
    assert knowledge.entries()[0].body == "原价 999 元。"

    page.write_text("## 学费多少钱\n原价 899 元。\n", encoding="utf-8")
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert page.stat().st_size == stat.st_size and page.stat().st_mtime_ns == stat.st_mtime_ns
    assert knowledge.entries()[0].body == "原价 899 元。"


def test_an_old_unchanged_file_is_only_stat_ed_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "prices.md"
    page.write_text("## 学费多少钱\n原价 999 元。\n", encoding="utf-8")
    os.utime(page, (1_600_000_000, 1_600_000_000))  # edited long ago: its stat can be trusted
    reads: list[int] = []
    digest = knowledge_module._digest
    monkeypatch.setattr(knowledge_module, "_digest", lambda paths: reads.append(1) or digest(paths))
    knowledge = Knowledge(tmp_path)
    first = knowledge.entries()
    assert knowledge.entries() is first and knowledge.entries() is first
    assert len(reads) == 1, "only the first call reads the files"


def test_added_and_removed_files_are_seen(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("## 甲\n一\n", encoding="utf-8")
    knowledge = Knowledge(tmp_path)
    assert [e.topic for e in knowledge.entries()] == ["甲"]
    (tmp_path / "b.md").write_text("## 乙\n二\n", encoding="utf-8")
    assert [e.topic for e in knowledge.entries()] == ["甲", "乙"]
    (tmp_path / "a.md").unlink()
    assert [e.topic for e in knowledge.entries()] == ["乙"]


def test_a_broken_edit_fails_every_call_until_fixed_and_never_serves_the_old_text(
    tmp_path: Path,
) -> None:
    page = tmp_path / "prices.md"
    page.write_text("## 学费多少钱\n原价 999 元。\n", encoding="utf-8")
    knowledge = Knowledge(tmp_path)
    knowledge.entries()
    page.write_bytes("## 学费多少钱\n原价 899 元。\n".encode("gb18030"))
    for _ in range(2):
        with pytest.raises(KnowledgeError):
            knowledge.entries()
    page.write_text("## 学费多少钱\n原价 899 元。\n", encoding="utf-8")
    assert knowledge.entries()[0].body == "原价 899 元。"
