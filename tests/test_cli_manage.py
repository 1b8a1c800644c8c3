"""`campaigns list | show | edit | delete` and `accounts remove` through the real `siyu`.

Each test runs on SQLite and PostgreSQL. The world (accounts, contacts, campaigns) is built
directly in the database; the commands under test run in-process as an operator runs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.cli import Outcome, Siyu, one_error_line, siyu_on
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns import manage
from worker.campaigns.lifecycle import cancel_campaign
from worker.campaigns.materialise import materialise
from worker.runtime import Context
from worker.store import tables

C, CA, R, D = (
    tables.campaigns.c,
    tables.campaign_accounts.c,
    tables.campaign_runs.c,
    tables.deliveries.c,
)
START, END = "2030-03-01T09:00:00+08:00", "2030-03-01T18:00:00+08:00"


@dataclass(frozen=True)
class World:
    ctx: Context
    run: Siyu

    def __call__(self, *args: str) -> Outcome:
        return self.run(*args)

    def ok(self, *args: str) -> Outcome:
        outcome = self.run(*args)
        assert (outcome.code, outcome.stderr) == (0, ""), outcome
        return outcome

    def refused(self, *args: str) -> str:
        """The refusal contract: exit 2, nothing on stdout, one `error:` line."""
        return one_error_line(self.run(*args))

    def show(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.ok("campaigns", "show", name, "--json").stdout)  # type: ignore[no-any-return]


@pytest.fixture
def siyu(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    """Accounts a1..a3 (memory), contacts u000001..u000005, templates invite and short."""
    ctx = make_context(db_url, redis_url, tmp_path)
    (tmp_path / "templates" / "short.j2").write_text("{{ contact.name }}: {{ course_name }}")
    monkeypatch.setenv("SIYU_TEMPLATES_DIR", str(tmp_path / "templates"))
    with siyu_on(db_url, monkeypatch, capsys) as run:
        add_accounts(ctx.engine, ["a1", "a2", "a3"])
        add_contacts(ctx.engine, 5)
        yield World(ctx, run)
    ctx.engine.dispose()


def set_status(siyu: World, name: str, status: str) -> None:
    with siyu.ctx.engine.begin() as conn:
        conn.execute(update(tables.campaigns).where(C.name == name).values(status=status))


def run_window(siyu: World, name: str) -> list[tuple[datetime, datetime | None]]:
    query = select(R.start_at, R.end_at).join(tables.campaigns, C.id == R.campaign_id)
    with siyu.ctx.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(query.where(C.name == name))]


def running(siyu: World, name: str, accounts: list[str]) -> None:
    """A campaign that began now, its deliveries materialised (all pending)."""
    add_campaign(siyu.ctx, name, accounts)
    run = start(siyu.ctx, name)
    assert run.id is not None
    materialise(siyu.ctx, run.id)


# --- list and show -------------------------------------------------------------------------


def test_list_shows_status_progress_and_window_in_the_campaigns_zone(siyu: World) -> None:
    add_campaign(siyu.ctx, "spring[vip]", ["a1"], start=START, end=END)
    running(siyu, "now", ["a2", "a3"])

    document = json.loads(siyu.ok("campaigns", "list", "--json").stdout)
    table = siyu.ok("campaigns", "list").stdout

    assert [(c["name"], c["status"], c["sent"], c["total"]) for c in document] == [
        ("now", "running", 0, 5),
        ("spring[vip]", "draft", 0, 0),
    ]
    assert document[1]["window"] == {"start": START, "end": END, "tz": "Asia/Shanghai"}
    assert document[0]["window"]["start"].endswith("+08:00")
    assert "spring[vip]" in table and "0/5" in table and "2030-03-01 09:00:00 +08:00" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_show_prints_the_whole_definition_and_each_run_with_its_counts(siyu: World) -> None:
    running(siyu, "now", ["a2", "a1"])

    document = siyu.show("now")
    table = siyu.ok("campaigns", "show", "now").stdout

    assert document["segment"] == {"name": "now", "where": "tag = python"}
    assert (document["template"], document["kind"], document["tz"]) == (
        "invite",
        "marketing",
        "Asia/Shanghai",
    )
    assert document["accounts"] == ["a2", "a1"]
    assert document["vars"]["course_name"] == "Python 入门"
    [run] = document["runs"]
    assert (run["status"], run["total"], run["counts"]["pending"]) == ("running", 5, 5)
    assert run["started_at"].endswith("+08:00") and run["finished_at"] is None
    assert "tag = python" in table and "a2, a1" in table and "pending 5" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_show_of_an_unknown_campaign_names_the_known_ones(siyu: World) -> None:
    add_campaign(siyu.ctx, "c1", ["a1"])

    assert "no campaign named 'ghost' (known: c1)" in siyu.refused("campaigns", "show", "ghost")


# --- edit ----------------------------------------------------------------------------------


def test_editing_a_draft_changes_only_what_is_given(siyu: World) -> None:
    add_campaign(siyu.ctx, "c1", ["a1"], start=START, end=END)

    siyu.ok("campaigns", "edit", "c1", "--var", "course_name=Go 进阶", "--accounts", "a3,a2")
    after_vars = siyu.show("c1")
    siyu.ok(
        "campaigns", "edit", "c1", "--template", "short", "--unset-var", "group_url",
        "--end", "2030-03-02T18:00", "--kind", "service",
    )  # fmt: skip
    after = siyu.show("c1")

    assert after_vars["vars"]["course_name"] == "Go 进阶"
    assert after_vars["vars"]["course_url"] == "https://edu.example.com/py"  # kept
    assert after_vars["accounts"] == ["a3", "a2"]
    assert after_vars["template"] == "invite" and after_vars["end"] == END
    assert "group_url" not in after["vars"] and after["vars"]["course_name"] == "Go 进阶"
    assert (after["template"], after["kind"]) == ("short", "service")
    assert (after["start"], after["end"]) == (START, "2030-03-02T18:00:00+08:00")
    assert after["accounts"] == ["a3", "a2"] and after["status"] == "draft"


def test_editing_a_scheduled_campaign_moves_its_runs_window_too(siyu: World) -> None:
    add_campaign(siyu.ctx, "later", ["a1"], start=START, end=END)
    assert start(siyu.ctx, "later").status == "scheduled"

    siyu.ok("campaigns", "edit", "later", "--start", "2030-04-01T09:00", "--end", "2030-04-02")

    document = siyu.show("later")
    assert (document["status"], document["start"]) == ("scheduled", "2030-04-01T09:00:00+08:00")
    assert run_window(siyu, "later") == [(datetime(2030, 4, 1, 1), datetime(2030, 4, 1, 16))]
    assert document["runs"][0]["start"] == "2030-04-01T09:00:00+08:00"


@pytest.mark.parametrize("status", ["running", "paused", "completed", "cancelled"])
def test_edit_is_refused_once_a_campaign_has_begun_or_ended(siyu: World, status: str) -> None:
    running(siyu, "c1", ["a1"])
    if status == "paused":
        siyu.ok("campaigns", "pause", "c1")
    elif status != "running":
        set_status(siyu, "c1", status)
    before = siyu.show("c1")

    line = siyu.refused("campaigns", "edit", "c1", "--var", "course_name=x")

    assert f"campaign 'c1' is {status}: only draft and scheduled campaigns can be edited" in line
    assert siyu.show("c1") == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--accounts", "a1,ghost"), "no account named 'ghost'"),
        (("--accounts", "nourl"), "url"),  # a mock account without its url
        (("--unset-var", "course_name"), "course_name"),  # the template needs it
        (("--unset-var", "nope"), "--unset-var: the campaign has no variable 'nope'"),
        (("--end", "2030-02-01T00:00+08:00"), "--end must be after --start"),
        (("--tz", "Mars/Base"), "unknown time zone 'Mars/Base'"),
        (("--cron", "61 9 * * *"), "--cron: '61 9 * * *' is not a cron expression"),
        ((), "nothing to change"),
    ],
    ids=[
        "account",
        "channel-config",
        "unrenderable",
        "unset-unknown",
        "window",
        "tz",
        "cron",
        "nothing",
    ],
)
def test_an_edit_is_validated_like_a_create_and_a_refused_one_changes_nothing(
    siyu: World, args: tuple[str, ...], needle: str
) -> None:
    add_campaign(siyu.ctx, "c1", ["a1"], start=START, end=END)
    add_accounts(siyu.ctx.engine, ["nourl"], channel="mock")
    before = siyu.show("c1")

    line = siyu.refused("campaigns", "edit", "c1", *args)

    assert needle in line
    assert siyu.show("c1") == before


def test_an_edit_that_raced_another_change_is_refused_and_writes_nothing(
    siyu: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_campaign(siyu.ctx, "c1", ["a1"], start=START, end=END)
    real = manage.validate_sends

    def render_then_someone_else_edits(*args: object, **kwargs: object) -> object:
        rendered = real(*args, **kwargs)  # type: ignore[arg-type]
        with siyu.ctx.engine.begin() as conn:
            conn.execute(update(tables.campaigns).values(template="short"))
        return rendered

    monkeypatch.setattr(manage, "validate_sends", render_then_someone_else_edits)

    line = siyu.refused("campaigns", "edit", "c1", "--var", "course_name=x")

    assert line == "error: campaign 'c1' changed while being edited; run the command again"
    assert siyu.show("c1")["vars"]["course_name"] == "Python 入门"


# --- delete --------------------------------------------------------------------------------


def test_deleting_a_draft_removes_it_and_its_sender_list(siyu: World) -> None:
    add_campaign(siyu.ctx, "c1", ["a1", "a2"])
    add_campaign(siyu.ctx, "c2", ["a1"])

    outcome = siyu.ok("campaigns", "delete", "c1")

    assert outcome.stdout == "campaign c1 deleted\n"
    with siyu.ctx.engine.connect() as conn:
        assert conn.execute(select(C.name)).scalars().all() == ["c2"]
        assert len(conn.execute(select(CA.account_id)).all()) == 1
    assert "no campaign named 'c1'" in siyu.refused("campaigns", "show", "c1")


@pytest.mark.parametrize(
    ("status", "instead"),
    [("scheduled", "cancel it instead"), ("cancelled", "it is kept for its history")],
)
def test_only_drafts_can_be_deleted(siyu: World, status: str, instead: str) -> None:
    add_campaign(siyu.ctx, "c1", ["a1"], start=START, end=END)
    start(siyu.ctx, "c1")
    if status == "cancelled":
        cancel_campaign(siyu.ctx, "c1")  # the CLI's context is per process

    line = siyu.refused("campaigns", "delete", "c1")

    assert line == f"error: campaign 'c1' is {status}: only drafts can be deleted; {instead}"
    assert siyu.show("c1")["status"] == status


def test_a_malformed_cron_is_refused_at_create_and_nothing_is_stored(siyu: World) -> None:
    siyu.ok("segments", "add", "py", "--where", "tag = python")

    line = siyu.refused(
        "campaigns", "create", "daily", "--segment", "py", "--template", "invite",
        "--accounts", "a1", "--cron", "0 9 * *",
    )  # fmt: skip

    assert "--cron: '0 9 * *' is not a cron expression" in line
    assert json.loads(siyu.ok("campaigns", "list", "--json").stdout) == []


# --- accounts remove -----------------------------------------------------------------------


def test_an_account_a_live_campaign_sends_from_is_not_removed(siyu: World) -> None:
    add_campaign(siyu.ctx, "c1", ["a1", "a2"])
    add_campaign(siyu.ctx, "c2", ["a2"], start=START)
    start(siyu.ctx, "c2")
    for name in ("c3", "c4"):  # begun, their audiences not yet materialised
        add_campaign(siyu.ctx, name, ["a2"])
        start(siyu.ctx, name)
    siyu.ok("campaigns", "pause", "c4")
    add_campaign(siyu.ctx, "c5", ["a2"])
    cancel_campaign(siyu.ctx, "c5")

    line = siyu.refused("accounts", "remove", "a2")

    assert line == (
        "error: account 'a2' is a sender of live campaign(s) c1 (draft), c2 (scheduled), "
        "c3 (running), c4 (paused); edit them to use other accounts, or cancel them, first"
    )
    assert siyu.show("c1")["accounts"] == ["a1", "a2"]


def test_an_account_with_open_deliveries_is_not_removed(siyu: World) -> None:
    running(siyu, "c1", ["a1"])
    set_status(siyu, "c1", "completed")  # a stray: the campaign ended, its rows did not

    line = siyu.refused("accounts", "remove", "a1")

    assert "account 'a1' has deliveries pending, claimed or being sent in c1 (5)" in line


def test_an_account_that_owns_contacts_is_not_removed(siyu: World) -> None:
    add_contacts(siyu.ctx.engine, 2, start=6, owner_of={6: 3, 7: 3})  # a3

    line = siyu.refused("accounts", "remove", "a3")

    assert "account 'a3' owns 2 contact(s) (u000006, u000007)" in line


def test_an_account_nothing_needs_is_removed_keeping_the_log_of_what_it_sent(
    siyu: World,
) -> None:
    running(siyu, "c1", ["a1", "a2"])
    cancel_campaign(siyu.ctx, "c1")  # the CLI's context is per process

    outcome = siyu.ok("accounts", "remove", "a1")

    assert outcome.stdout.startswith("removed account a1; its ")
    names = [a["name"] for a in json.loads(siyu.ok("accounts", "list", "--json").stdout)]
    assert names == ["a2", "a3"]
    assert siyu.show("c1")["accounts"] == ["a2"]
    with siyu.ctx.engine.connect() as conn:
        states = conn.execute(select(D.state)).scalars().all()
    assert sorted(states) == ["skipped"] * 5  # the log keeps every row
