"""`segments add | show | list | delete` through the real `siyu` entry point.

Each test runs on SQLite and PostgreSQL: the CLI's configured database is the `db_url` one.
A segment must not silently select the wrong people: an unknown field or value, or a value of
the wrong type, is one `error:` line naming the column and the closest known field or value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, update
from sqlmodel import Session

from tests.support.cli import Siyu, one_error_line, siyu_on
from tests.support.world import VARS, add_accounts, add_campaign, make_context
from worker.campaigns.lifecycle import CampaignSpec, create_campaign
from worker.runtime import Context
from worker.services.segments import check_where
from worker.store import tables
from worker.store.models import Contact

PEOPLE = [
    # external_id, tags, attrs
    ("u1", ["python", "vip"], {"city": "上海", "level": "2", "signup_date": "2026-10-05"}),
    ("u2", ["python", "refunded"], {"city": "北京", "level": "3.0", "course": "data-camp"}),
    ("u3", ["data"], {"city": "上海", "level": "10", "signup_date": "2026-09-30"}),
    ("u4", [], {"city": "上海", "note": "2026-10-01"}),
]


@pytest.fixture
def siyu(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """`siyu(*args)` runs the console script in-process against the test database (PEOPLE)."""
    with siyu_on(db_url, monkeypatch, capsys) as run:
        with Session(engine) as session:
            for external_id, tags, attrs in PEOPLE:
                contact = Contact(channel="memory", external_id=external_id, tags=tags, attrs=attrs)
                session.add(contact)
            session.commit()
        yield run


def segments(siyu: Siyu) -> list[dict[str, object]]:
    listed = siyu("segments", "list", "--json")
    assert listed.code == 0, listed
    return list(json.loads(listed.stdout))


REFUSED = [
    (
        "tags = python",
        "column 1: unknown field 'tags'; did you mean 'tag'? Known fields: tag, name, "
        "external_id, channel, owner, city, level, signup_date, course, note",
    ),
    ("cty = 上海", "column 1: unknown field 'cty'; did you mean 'city'?"),
    ("tag = refundd", "column 7: no contact has tag = 'refundd'; did you mean 'refunded'?"),
    (
        "course = data-cmap",
        "column 10: no contact has course = 'data-cmap'; did you mean 'data-camp'?",
    ),
    ("city = 广州", "column 8: no contact has city = '广州'; the most common are '上海', '北京'"),
    (
        "tag = python and city != 上海 or tag = vipp",
        "column 38: no contact has tag = 'vipp'; did you mean 'vip'?",
    ),
    (
        "level >= abc",
        "column 10: 'level' holds numbers (every contact's value is one); "
        "compare it with a number such as 2, not 'abc'",
    ),
    ("level in (2, x)", "column 14: 'level' holds numbers"),
    (
        "signup_date >= 2026-13-01",
        "column 16: '2026-13-01' is not a real date (month must be in 1..12)",
    ),
    (
        "signup_date < soon",
        "column 15: 'signup_date' holds dates (every contact's value is YYYY-MM-DD); "
        "compare it with a date such as 2026-10-01, not 'soon'",
    ),
]


@pytest.mark.parametrize(("where", "message"), REFUSED, ids=[w for w, _ in REFUSED])
def test_a_segment_that_would_select_the_wrong_people_is_refused_with_the_closest_fix(
    siyu: Siyu, where: str, message: str
) -> None:
    line = one_error_line(siyu("segments", "add", "s", "--where", where))

    assert line.startswith(f"error: segment expression: {message}"), line
    assert line.endswith(f" in: {where}")
    assert segments(siyu) == []


def test_allow_unknown_stores_an_unknown_field_or_value_and_says_so_on_stderr(
    siyu: Siyu,
) -> None:
    added = siyu("segments", "add", "s", "--where", "tag = refundd or cty = x", "--allow-unknown")

    assert added.code == 0, added
    assert added.stdout == "segment s added: 0 members now\n"
    assert added.stderr.splitlines() == [
        "note: column 7: no contact has tag = 'refundd'; did you mean 'refunded'? "
        "(kept anyway: --allow-unknown)",
        "note: column 18: unknown field 'cty'; did you mean 'city'? Known fields: tag, name, "
        "external_id, channel, owner, city, level, signup_date, course, note "
        "(kept anyway: --allow-unknown)",
    ]
    assert segments(siyu) == [{"name": "s", "where": "tag = refundd or cty = x", "members": 0}]


@pytest.mark.parametrize(
    ("where", "column"),
    [("signup_date >= 2026-02-30", 16), ("nobody_has >= 2026-13-01", 15), ("level = high", 9)],
)
def test_allow_unknown_never_excuses_an_impossible_date_or_a_wrong_type(
    siyu: Siyu, where: str, column: int
) -> None:
    line = one_error_line(siyu("segments", "add", "s", "--where", where, "--allow-unknown"))

    assert line.startswith(f"error: segment expression: column {column}: ")
    assert segments(siyu) == []


def test_a_sound_expression_is_stored_quietly_with_its_member_count(siyu: Siyu) -> None:
    where = "tag = python and level >= 2 and city in (上海, 北京) or signup_date < 2026-10-01"

    added = siyu("segments", "add", "s", "--where", where)

    assert (added.code, added.stdout, added.stderr) == (0, "segment s added: 3 members now\n", "")
    assert json.loads(siyu("segments", "show", "s", "--json").stdout) == {
        "name": "s",
        "where": where,
        "members": 3,
    }


def test_a_text_attribute_with_a_date_among_other_values_accepts_any_text(siyu: Siyu) -> None:
    # 'note' is text (only one value, which happens to look like a date): no type is imposed.
    assert siyu("segments", "add", "s", "--where", "level = 2 or note = 2026-10-01").code == 0


def test_checking_an_expression_costs_two_statements_however_many_contacts(
    siyu: Siyu, engine: Engine
) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    notes = check_where(engine, "tag in (python, vip) and city = 上海 and level >= 2")

    assert notes == []
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 2, statements


def test_list_show_and_delete(siyu: Siyu) -> None:
    assert siyu("segments", "add", "py", "--where", "tag = python").code == 0
    assert siyu("segments", "add", "sh", "--where", "city = 上海").code == 0

    table = siyu("segments", "list")
    assert table.code == 0
    assert "py" in table.stdout and "tag = python" in table.stdout
    assert segments(siyu) == [
        {"name": "py", "where": "tag = python", "members": 2},
        {"name": "sh", "where": "city = 上海", "members": 3},
    ]
    assert siyu("segments", "show", "py").stdout == "py: tag = python\nmembers: 2\n"

    deleted = siyu("segments", "delete", "py")

    assert (deleted.code, deleted.stdout) == (0, "segment py deleted\n")
    assert [s["name"] for s in segments(siyu)] == ["sh"]
    assert "segment 'py' not found; known segments: sh" in one_error_line(
        siyu("segments", "delete", "py")
    )


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path, engine: Engine) -> Context:
    context = make_context(db_url, redis_url, tmp_path)
    add_accounts(context.engine, ["a1"])
    return context


def set_status(engine: Engine, campaign: str, status: str) -> None:
    with engine.begin() as conn:
        name = tables.campaigns.c.name
        conn.execute(update(tables.campaigns).where(name == campaign).values(status=status))


def test_delete_is_refused_while_a_live_campaign_uses_the_segment(siyu: Siyu, ctx: Context) -> None:
    assert siyu("segments", "add", "py", "--where", "tag = python").code == 0
    add_campaign(ctx, "py", ["a1"])  # a draft on segment 'py'
    spec = CampaignSpec(
        name="autumn", segment="py", template="invite", accounts=["a1"], variables=VARS
    )
    create_campaign(ctx.engine, ctx.settings.templates_dir, spec)
    set_status(ctx.engine, "autumn", "running")

    line = one_error_line(siyu("segments", "delete", "py"))

    assert line == (
        "error: segment 'py' is used by live campaign(s) autumn (running), py (draft); "
        "cancel or delete them first"
    )
    for status in ("scheduled", "paused"):
        set_status(ctx.engine, "py", status)
        assert f"py ({status})" in one_error_line(siyu("segments", "delete", "py"))
    assert [s["name"] for s in segments(siyu)] == ["py"]


def test_a_segment_that_finished_campaigns_refer_to_is_kept_for_their_history(
    siyu: Siyu, ctx: Context
) -> None:
    assert siyu("segments", "add", "py", "--where", "tag = python").code == 0
    add_campaign(ctx, "py", ["a1"])
    set_status(ctx.engine, "py", "completed")

    line = one_error_line(siyu("segments", "delete", "py"))

    assert line == "error: segment 'py' is kept for the history of campaign(s) py (completed)"
