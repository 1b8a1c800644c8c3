"""`campaigns deliveries --csv`: a run built and sent in-process, its log read back as CSV.

Each test runs on SQLite and PostgreSQL with real Redis; the CLI runs in-process through the
real `siyu` entry point against the test's database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.cli import Outcome, Siyu, siyu_on
from tests.support.fakes import ScriptedChannel, register_fakes
from tests.support.rows import drain
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import RecipientUnreachable
from worker.channels.memory import HUB
from worker.cli.common import console
from worker.runtime import Context
from worker.store import tables
from worker.store.models import Suppression

CT, D = tables.contacts.c, tables.deliveries.c
HEADER = ["external_id", "name", "account", "state", "reason", "last_error", "attempts", "sent_at"]
TRICKY_NAME = '王五, "Jr."\n第二行'  # a comma, quotes and a line break in one cell


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Context:
    HUB.clear()
    ScriptedChannel.reset()
    register_fakes()
    return make_context(db_url, redis_url, tmp_path, claim_batch=50)


@pytest.fixture
def siyu(
    ctx: Context, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    """`siyu(*args)` runs the console script in-process against the test database."""
    with siyu_on(db_url, monkeypatch, capsys) as run:
        yield run


def sent_campaign(ctx: Context) -> None:
    """c1 (Asia/Shanghai) on a1, a2 over 12 members: 9 sent, 3 skipped for three reasons."""
    accounts = add_accounts(ctx.engine, ["a1", "a2"])
    outsider = add_accounts(ctx.engine, ["outsider"])["outsider"]
    add_contacts(ctx.engine, 10)
    add_contacts(ctx.engine, 1, start=11, owner_of={11: outsider})
    add_contacts(ctx.engine, 1, start=12, channel="mock")
    with ctx.engine.begin() as conn:
        conn.execute(Suppression.__table__.insert(), [{"contact_id": 1, "reason": "opted_out"}])
        conn.execute(update(tables.contacts).where(CT.id == 2).values(name=TRICKY_NAME))
    add_campaign(ctx, "c1", ["a1", "a2"], tz="Asia/Shanghai")
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    drain(ctx, [accounts["a1"], accounts["a2"]])


def parsed(outcome: Outcome) -> list[dict[str, str]]:
    """The CSV on stdout, BOM checked and removed, as one dict per row (header checked)."""
    assert outcome.code == 0, outcome
    assert outcome.stdout.startswith("\ufeff")
    reader = csv.DictReader(io.StringIO(outcome.stdout[1:], newline=""))
    rows = list(reader)
    assert reader.fieldnames == HEADER
    return rows


def sent_at_in_db(ctx: Context) -> dict[str, datetime]:
    query = select(CT.external_id, D.sent_at).join(tables.contacts, CT.id == D.contact_id)
    with ctx.engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(query) if r[1] is not None}


def test_the_csv_lists_every_member_once_with_state_reason_and_local_sent_at(
    ctx: Context, siyu: Siyu
) -> None:
    sent_campaign(ctx)

    outcome = siyu("campaigns", "deliveries", "c1", "--csv")

    assert outcome.stdout.encode("utf-8").startswith(b"\xef\xbb\xbfexternal_id,name,")
    assert "\r\n" in outcome.stdout  # Excel's line ends
    rows = parsed(outcome)
    by_id = {row["external_id"]: row for row in rows}
    assert len(rows) == len(by_id) == 12
    outcome_of = {k: (r["state"], r["reason"], r["sent_at"]) for k, r in by_id.items()}
    assert {k: v for k, v in outcome_of.items() if v[0] != "sent"} == {
        "u000001": ("skipped", "opted_out", ""),
        "u000011": ("skipped", "owner_not_in_campaign", ""),
        "u000012": ("skipped", "no_reachable_account", ""),
    }
    assert by_id["u000012"]["account"] == ""  # no account could reach it
    sent = [r for r in rows if r["state"] == "sent"]
    assert len(sent) == 9
    assert {r["account"] for r in sent} <= {"a1", "a2"}
    assert {(r["reason"], r["last_error"], r["attempts"]) for r in sent} == {("", "", "1")}
    assert by_id["u000002"]["name"] == TRICKY_NAME
    assert by_id["u000003"]["name"] == "学员3"
    in_db = sent_at_in_db(ctx)
    for row in sent:
        assert row["sent_at"].endswith("+08:00"), row
        shown = datetime.fromisoformat(row["sent_at"])  # to the second, with the offset
        assert len(row["sent_at"]) == len("2026-12-01T19:03:07+08:00")
        stored = in_db[row["external_id"]].replace(tzinfo=UTC, microsecond=0)
        assert shown == stored


def test_the_csv_can_be_filtered_to_one_state(ctx: Context, siyu: Siyu) -> None:
    sent_campaign(ctx)

    rows = parsed(siyu("campaigns", "deliveries", "c1", "--csv", "--status", "skipped"))

    assert sorted((r["external_id"], r["state"]) for r in rows) == [
        ("u000001", "skipped"),
        ("u000011", "skipped"),
        ("u000012", "skipped"),
    ]


def failed_campaign(ctx: Context) -> None:
    """c2 (New York) on a scripted account: u000002 fails with an error holding '[...]'."""
    accounts = add_accounts(ctx.engine, ["s1"], channel="scripted")

    def script(message: OutboundMessage) -> SendResult:
        if message.to == "u000002":
            raise RecipientUnreachable('user [gone], "blocked" by the platform')
        return SendResult(f"m-{message.to}")

    ScriptedChannel.scripts["s1"] = script
    add_contacts(ctx.engine, 3, channel="scripted")
    add_campaign(ctx, "c2", ["s1"], tz="America/New_York")
    materialise(ctx, start(ctx, "c2").id)  # type: ignore[arg-type]
    drain(ctx, [accounts["s1"]])


def test_a_failed_recipient_shows_its_reason_and_last_error_in_the_csv_and_the_table(
    ctx: Context, siyu: Siyu, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed_campaign(ctx)
    monkeypatch.setattr(console, "width", 200)  # a wide terminal: one line per row

    rows = parsed(siyu("campaigns", "deliveries", "c2", "--csv"))
    table = siyu("campaigns", "deliveries", "c2")

    failed = [r for r in rows if r["state"] == "failed"]
    assert [(r["external_id"], r["reason"], r["last_error"]) for r in failed] == [
        ("u000002", "recipient_unreachable", 'user [gone], "blocked" by the platform')
    ]
    offsets = {r["sent_at"][-6:] for r in rows if r["state"] == "sent"}
    assert offsets == {"-05:00"}  # New York in December, not the default Asia/Shanghai
    assert table.code == 0, table
    for column in ("reason", "last_error", "sent_at"):
        assert column in table.stdout
    assert "recipient_unreachable" in table.stdout
    assert 'user [gone], "blocked" by the platform' in table.stdout  # not taken for markup


def test_json_and_csv_together_are_refused(ctx: Context, siyu: Siyu) -> None:
    sent_campaign(ctx)

    outcome = siyu("campaigns", "deliveries", "c1", "--json", "--csv")

    assert (outcome.code, outcome.stdout) == (2, "")
    assert outcome.stderr == "error: --json and --csv are alternatives: give one of them\n"


@pytest.mark.parametrize("flag", ["--csv", "--json"])
def test_an_unknown_campaign_or_state_writes_nothing_on_stdout(
    ctx: Context, siyu: Siyu, flag: str
) -> None:
    sent_campaign(ctx)

    for args in (("nope",), ("c1", "--status", "lost")):
        outcome = siyu("campaigns", "deliveries", *args, flag)

        assert (outcome.code, outcome.stdout) == (2, "")
        assert outcome.stderr.startswith("error: ")
