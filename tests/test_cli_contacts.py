"""`contacts` and `segments` commands, driven through a scratch app holding just those two."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner, Result

from worker.audience.importer import InvalidRows
from worker.audience.segments import SegmentSyntaxError
from worker.cli import contacts, segments
from worker.config import get_settings
from worker.errors import NotFound
from worker.store.db import get_engine, reset_engines
from worker.store.models import Account

DATA = Path(__file__).parent / "data"
cli = typer.Typer()
cli.add_typer(contacts.app, name="contacts")
cli.add_typer(segments.app, name="segments")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI's configured database: a fresh SQLite file with accounts alice (memory), bob."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SIYU_DATABASE_URL", url)
    get_settings.cache_clear()
    reset_engines()
    assert run("contacts", "list", "--json").exit_code == 0  # creates the schema
    engine = get_engine(url)
    with Session(engine) as session:
        session.add_all(
            [Account(name="alice", channel="memory"), Account(name="bob", channel="mock")]
        )
        session.commit()
    yield engine
    reset_engines()
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def listed(*args: str) -> list[dict[str, object]]:
    result = run("contacts", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_import_prints_a_summary_and_each_rejected_row_on_stderr(database: Engine) -> None:
    path = DATA / "contacts_some_invalid.csv"

    result = run("contacts", "import", str(path), "--channel", "memory", "--skip-invalid")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"imported {path}: 3 created, 0 updated, 5 rejected\n"
    assert result.stderr.splitlines() == [
        f"{path} line 5: empty external_id",
        f"{path} line 6: external_id 'a2' appears again (first on line 4)",
        f"{path} line 7: unknown owner 'ghost' (no account has that name)",
        f"{path} line 8: malformed row: expected 5 fields, found 2",
        f"{path} line 9: owner 'bob' is an account of channel 'mock', not 'memory'",
    ]
    assert [c["external_id"] for c in listed()] == ["a1", "a2", "a6"]


def test_import_without_skip_invalid_refuses_the_file_with_a_user_error(database: Engine) -> None:
    result = run(
        "contacts", "import", str(DATA / "contacts_some_invalid.csv"), "--channel", "memory"
    )

    assert isinstance(result.exception, InvalidRows)
    assert "5 invalid row(s)" in str(result.exception)
    assert result.stdout == ""
    assert listed() == []


def test_import_json_and_dry_run_report_without_writing(database: Engine) -> None:
    path = DATA / "contacts_bom_multiline.csv"

    result = run("contacts", "import", str(path), "--channel", "memory", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(path),
        "channel": "memory",
        "dry_run": True,
        "rows": 3,
        "created": 3,
        "updated": 0,
        "rejected": [],
    }
    assert listed() == []


def test_list_json_prints_every_matching_contact_with_its_owner_name(database: Engine) -> None:
    run("contacts", "import", str(DATA / "contacts_bom_multiline.csv"), "--channel", "memory")
    assert run("segments", "add", "shanghai", "--where", "city = 上海").exit_code == 0

    everyone = listed("--channel", "memory")
    members = listed("--segment", "shanghai")

    assert len(everyone) == 3
    assert members == [
        {
            "external_id": "wx_001",
            "name": "张三",
            "channel": "memory",
            "tags": ["python", "vip"],
            "attrs": {"city": "上海", "level": "2", "note": "第一行\r\nsecond line"},
            "owner": "alice",
        }
    ]


def test_the_list_table_stops_at_the_limit_and_says_how_many_there_are(database: Engine) -> None:
    run("contacts", "import", str(DATA / "contacts_bom_multiline.csv"), "--channel", "memory")

    result = run("contacts", "list", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert "wx_001" in result.stdout and "wx_002" in result.stdout
    assert "wx_003" not in result.stdout
    assert "showing 2 of 3" in result.stdout


def test_listing_an_unknown_segment_is_a_not_found_error(database: Engine) -> None:
    result = run("contacts", "list", "--segment", "ghosts")

    assert isinstance(result.exception, NotFound)
    assert "segment 'ghosts' not found" in str(result.exception)


def test_segments_add_show_and_list(database: Engine) -> None:
    run("contacts", "import", str(DATA / "contacts_bom_multiline.csv"), "--channel", "memory")

    added = run("segments", "add", "py", "--where", "tag = python or level >= 3")
    shown = run("segments", "show", "py", "--json")
    listed_ = run("segments", "list", "--json")

    assert added.stdout == "segment py added: 2 members now\n"
    assert json.loads(shown.stdout) == {
        "name": "py",
        "where": "tag = python or level >= 3",
        "members": 2,
    }
    assert json.loads(listed_.stdout) == [json.loads(shown.stdout)]
    assert "members: 2" in run("segments", "show", "py").stdout


def test_segments_add_with_bad_syntax_raises_the_positioned_error(database: Engine) -> None:
    result = run("segments", "add", "bad", "--where", "level >= ")

    assert isinstance(result.exception, SegmentSyntaxError)
    assert "column 10" in str(result.exception)
    assert json.loads(run("segments", "list", "--json").stdout) == []
