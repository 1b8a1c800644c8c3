"""Readable where people look: times in their own zone to the second, tables that fit 80
columns without cutting a name, URLs never broken.

Everything runs through the real `siyu` in-process on an 80-column console, on SQLite and
PostgreSQL, with names as long as operators give them: a 30-character campaign, 24-character
account names, Chinese names (two cells a character), a 31-character e-mail as external id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.cells import cell_len
from sqlalchemy import insert, select, update

from tests.support.cli import Outcome, Siyu, siyu_on
from tests.support.fakes import ScriptedChannel, register_fakes
from tests.support.world import add_accounts, add_campaign, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import RecipientUnreachable
from worker.cli.common import console
from worker.dispatch.lane import run_lane
from worker.runtime import Context
from worker.store import tables
from worker.store.models import Contact, Suppression, utcnow

A, C, CT, D, S = (
    tables.accounts.c,
    tables.campaigns.c,
    tables.contacts.c,
    tables.deliveries.c,
    tables.suppressions.c,
)
CAMPAIGN = "spring-python-bootcamp-2026-q4"  # 30 characters
SEGMENT = "python-learners-shanghai-2026"
SENDER = "spring-python-sender-001"  # 24 characters
SENDER_CN = "思语学堂企业微信助教账号"  # 12 characters, 24 cells
CONTACTS = {
    "u000001": "学员王小明同学",
    "u000002": "欧阳娜娜",
    "zhang.san@example-school.edu.cn": "Zhang San",
    "u000004": "李雷",
}
NAMES = [CAMPAIGN, SEGMENT, SENDER, SENDER_CN, *CONTACTS, *CONTACTS.values()]
LONG_URL = (
    "https://edu.example.com/courses/python-data-analysis-bootcamp-2026-winter/landing?ref=sp"
)
NO_WORKER = "no worker is running: start one with `siyu worker`"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d")


@dataclass(frozen=True)
class World:
    ctx: Context
    run: Siyu

    def ok(self, *args: str) -> Outcome:
        outcome = self.run(*args)
        assert (outcome.code, outcome.stderr) == (0, ""), outcome
        return outcome

    def lines(self, *args: str) -> list[str]:
        return self.ok(*args).stdout.splitlines()

    def status(self, *args: str) -> Outcome:
        """`campaigns status`, which warns on stderr while no worker runs a live campaign."""
        outcome = self.run("campaigns", "status", *args)
        assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome
        assert outcome.stderr in ("", f"warning: {NO_WORKER}\n"), outcome
        return outcome


@pytest.fixture
def world(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    """CAMPAIGN sent from SENDER and SENDER_CN to CONTACTS; u000002 failed, the rest sent."""
    ScriptedChannel.reset()
    register_fakes()
    ctx = make_context(db_url, redis_url, tmp_path)
    monkeypatch.setenv("SIYU_TEMPLATES_DIR", str(ctx.settings.templates_dir))
    monkeypatch.setattr(console, "width", 80)
    with siyu_on(db_url, monkeypatch, capsys) as run:
        _sent_campaign(ctx)
        yield World(ctx, run)
    ctx.engine.dispose()


def _sent_campaign(ctx: Context) -> None:
    ids = add_accounts(ctx.engine, [SENDER, SENDER_CN], channel="scripted")

    def script(message: OutboundMessage) -> SendResult:
        if message.to == "u000002":
            raise RecipientUnreachable('user [gone], "blocked" by the platform')
        return SendResult(f"m-{message.to}")

    ScriptedChannel.scripts.update({SENDER: script, SENDER_CN: script})
    now = utcnow()
    # Two contacts are bound to an account each, so that both accounts appear in the log
    # whatever the capacity weights of the hour make of the other two (1 in 4 weights put
    # all four pooled ones on one account).
    owners = {"u000001": ids[SENDER_CN], "u000004": ids[SENDER]}
    rows = [
        {"channel": "scripted", "external_id": key, "name": name, "tags": ["python"],
         "attrs": {"city": "上海"}, "owner_id": owners.get(key), "created_at": now,
         "updated_at": now}
        for key, name in CONTACTS.items()
    ]  # fmt: skip
    with ctx.engine.begin() as conn:
        conn.execute(insert(Contact), rows)
    add_campaign(ctx, CAMPAIGN, [SENDER, SENDER_CN], where="tag = python")
    with ctx.engine.begin() as conn:  # the segment under its own (long) name
        conn.execute(update(tables.segments).values(name=SEGMENT))
    materialise(ctx, start(ctx, CAMPAIGN).id)  # type: ignore[arg-type]
    for _ in range(20):
        if not any([run_lane(ctx, ids[a], slice_s=5).more for a in (SENDER, SENDER_CN)]):
            return
    raise AssertionError("lanes did not drain")


def fits_and_names_whole(lines: list[str], names: list[str]) -> None:
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, "\n".join(lines)
    for name in names:
        assert any(name in line for line in lines), (name, "\n".join(lines))


def in_db(world: World, query: object) -> list[tuple[object, ...]]:
    with world.ctx.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[call-overload]


# --- 80 columns, names whole -----------------------------------------------------------------


def test_every_table_fits_80_columns_and_shows_each_name_whole(world: World) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(insert(Suppression), [{"contact_id": 1, "reason": "complaint via hotline"}])

    fits_and_names_whole(world.lines("campaigns", "list"), [CAMPAIGN])
    fits_and_names_whole(world.lines("campaigns", "show", CAMPAIGN), [CAMPAIGN, SENDER_CN])
    fits_and_names_whole(world.lines("campaigns", "status", CAMPAIGN), [CAMPAIGN, *NAMES[2:4]])
    fits_and_names_whole(world.lines("campaigns", "deliveries", CAMPAIGN), NAMES[2:])
    fits_and_names_whole(world.lines("campaigns", "plan", CAMPAIGN), [CAMPAIGN, SENDER, SENDER_CN])
    fits_and_names_whole(world.lines("accounts", "list"), [SENDER, SENDER_CN])
    fits_and_names_whole(world.lines("segments", "list"), [SEGMENT])
    fits_and_names_whole(world.lines("contacts", "list"), [SENDER, *NAMES[4:]])
    fits_and_names_whole(world.lines("contacts", "suppressions"), ["u000001"])


def test_the_deliveries_table_folds_reason_and_error_rather_than_hiding_them(
    world: World,
) -> None:
    lines = world.lines("campaigns", "deliveries", CAMPAIGN, "--status", "failed")

    assert "…" not in "\n".join(lines)
    assert column(lines, "reason") == "failedrecipient_unreachable"
    assert column(lines, "last_error") == 'user[gone],"blocked"bytheplatform'


def column(lines: list[str], header: str) -> str:
    """Everything in one table column, top to bottom, without spaces: the cells under
    `header` up to where the next column starts (rich folds a long word onto more lines)."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    head = next(line for line in lines[:rule] if f" {header} " in f" {line} ")
    start = head.index(header)  # headers are ASCII: characters are cells
    starts = [m.start(1) for m in re.finditer(r"(?:^|  )(\S)", lines[rule - 1])]
    end = min((at for at in starts if at > start), default=10**6)
    body = "".join(_cells(line, start, end) for line in lines[rule + 1 :])
    return "".join(body.split())


def _cells(line: str, start: int, end: int) -> str:
    """The characters of `line` between terminal cells `start` and `end`."""
    out, at = [], 0
    for char in line:
        if start <= at < end:
            out.append(char)
        at += cell_len(char)
    return "".join(out)


def test_watch_shows_the_status_head_and_a_bar_per_account_within_80_columns(
    world: World,
) -> None:
    lines = world.lines("campaigns", "status", CAMPAIGN, "--watch")  # completed: one frame

    fits_and_names_whole(lines, [CAMPAIGN, SENDER, SENDER_CN])
    assert any(line.startswith("window ") for line in lines)
    assert any(line.startswith("eta ") for line in lines)


def test_a_table_whose_names_are_wider_than_the_terminal_overflows_instead_of_cutting(
    world: World,
) -> None:
    very_long = "a-sender-account-whose-name-alone-takes-up-most-of-an-eighty-column-line"
    with world.ctx.engine.begin() as conn:
        conn.execute(update(tables.accounts).where(A.name == SENDER).values(name=very_long))

    lines = world.lines("accounts", "list")

    assert any(very_long in line for line in lines)
    assert any("America" in line or "Asia/Shanghai" in line for line in lines)  # nothing lost
    row = next(line for line in lines if very_long in line)
    assert row.split()[1:3] == ["scripted", "active"], row


# --- times -------------------------------------------------------------------------------------


def test_campaign_times_are_in_the_campaigns_zone_with_the_offset_to_the_second(
    world: World,
) -> None:
    add_campaign(
        world.ctx, "july-4th", [SENDER], tz="America/New_York",
        start="2030-07-04T09:00:05", end="2030-07-04T21:30:00",
    )  # fmt: skip
    start_, end = "2030-07-04 09:00:05 -04:00", "2030-07-04 21:30:00 -04:00"

    listed = world.ok("campaigns", "list").stdout
    shown = world.lines("campaigns", "show", "july-4th")
    status = world.lines("campaigns", "status", "july-4th")
    document = json.loads(world.ok("campaigns", "status", "july-4th", "--json").stdout)

    assert start_ in listed and end in listed
    assert f"start: {start_}" in shown and f"end: {end}" in shown
    assert f"window {start_} .. {end}" in status
    assert f"window {start_} .. {end}" in world.lines("campaigns", "plan", "july-4th")
    assert document["window"] == {
        "start": "2030-07-04T09:00:05-04:00",
        "end": "2030-07-04T21:30:00-04:00",
        "tz": "America/New_York",
    }
    [created] = [line for line in shown if line.startswith("created: ")]
    assert TIME.fullmatch(created.removeprefix("created: ")), created
    assert created.endswith(("-04:00", "-05:00"))


def test_a_run_and_its_deliveries_show_when_they_happened_in_the_campaigns_zone(
    world: World,
) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    sent = dict(in_db(world, select(CT.external_id, D.sent_at).join(tables.contacts)))
    started = in_db(world, select(tables.campaign_runs.c.started_at))[0][0]

    table = world.ok("campaigns", "deliveries", CAMPAIGN).stdout
    runs = world.ok("campaigns", "show", CAMPAIGN).stdout

    for external_id, when in sent.items():
        if when is None:
            continue
        local = when.replace(tzinfo=UTC).astimezone(shanghai)  # type: ignore[union-attr]
        date, clock = local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")
        assert date in table and clock in table, (external_id, table)
    local = started.replace(tzinfo=UTC).astimezone(shanghai)  # type: ignore[union-attr]
    assert local.strftime("%Y-%m-%d %H:%M:%S +08:00") in runs.replace("\n", " ")


def test_status_shows_the_eta_in_the_campaigns_zone_and_json_keeps_iso_8601(
    world: World,
) -> None:
    add_campaign(world.ctx, "running", [SENDER])
    run = start(world.ctx, "running")
    materialise(world.ctx, run.id)  # type: ignore[arg-type]
    recent = utcnow() - timedelta(seconds=10)
    with world.ctx.engine.begin() as conn:
        first_two = select(D.id).where(D.run_id == run.id).order_by(D.id).limit(2)
        ids = [row[0] for row in conn.execute(first_two)]
        sent = update(tables.deliveries).where(D.id.in_(ids))
        conn.execute(sent.values(state="sent", sent_at=recent))

    status = world.status("running").stdout.splitlines()
    document = json.loads(world.status("running", "--json").stdout)

    [eta] = [line.removeprefix("eta ") for line in status if line.startswith("eta ")]
    assert TIME.fullmatch(eta) and eta.endswith(" +08:00"), eta
    from_json = datetime.fromisoformat(document["eta"])
    shown = datetime.strptime(eta.replace(" +08:00", "+0800"), "%Y-%m-%d %H:%M:%S%z")
    assert abs((from_json - shown).total_seconds()) < 5


def test_account_times_are_in_the_accounts_zone(world: World) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(tables.accounts)
            .where(A.name == SENDER)
            .values(
                tz="Europe/Berlin",
                state="cooldown",
                state_reason="rate_limited",
                cooldown_until=datetime(2030, 1, 15, 12, 0, 5),
            )
        )

    lines = world.lines("accounts", "list")
    document = json.loads(world.ok("accounts", "list", "--json").stdout)

    row = "\n".join(lines)
    assert "2030-01-15" in row and "13:00:05 +01:00" in row.replace("\n", " "), row
    [entry] = [a for a in document if a["name"] == SENDER]
    assert datetime.fromisoformat(entry["cooldown_until"]) == datetime(
        2030, 1, 15, 12, 0, 5, tzinfo=UTC
    )


def test_times_of_no_campaign_or_account_are_in_the_installations_zone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_TZ", "Asia/Kolkata")
    from worker.config import get_settings

    get_settings.cache_clear()
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(Suppression),
            [{"contact_id": 1, "reason": "opted_out", "created_at": datetime(2030, 7, 1, 0, 0, 7)}],
        )

    table = world.ok("contacts", "suppressions").stdout
    document = json.loads(world.ok("contacts", "suppressions", "--json").stdout)

    assert "2030-07-01 05:30:07 +05:30" in table
    assert datetime.fromisoformat(document[0]["created_at"]) == datetime(
        2030, 7, 1, 0, 0, 7, tzinfo=UTC
    )


def test_an_unknown_installation_zone_is_one_error_line(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_TZ", "Mars/Olympus")
    from worker.config import get_settings

    get_settings.cache_clear()
    with world.ctx.engine.begin() as conn:
        conn.execute(insert(Suppression), [{"contact_id": 1, "reason": "opted_out"}])

    outcome = world.run("contacts", "suppressions")

    assert outcome.code == 2 and "Traceback" not in outcome.stderr
    assert outcome.stderr.startswith("error: SIYU_TZ: unknown time zone 'Mars/Olympus'")


# --- URLs ---------------------------------------------------------------------------------------


def test_a_long_url_is_printed_whole_in_a_preview_a_definition_and_an_error(
    world: World,
) -> None:
    template = world.ctx.settings.templates_dir / "link.j2"
    template.write_text("{{ contact.name }}，课程介绍：{{ course_url }} 回复退订不再接收")
    with world.ctx.engine.begin() as conn:
        conn.execute(update(tables.campaigns).values(template="link"))
        conn.execute(update(tables.campaigns).values(vars={"course_url": LONG_URL}))

    preview = world.lines("campaigns", "preview", CAMPAIGN, "--limit", "2")
    shown = world.lines("campaigns", "show", CAMPAIGN)
    refused = world.run(
        "accounts", "add", "x", "--channel", "mock", "--config", f"url=ftp{LONG_URL[5:]}"
    )

    assert len(LONG_URL) > 80
    assert sum(LONG_URL in line for line in preview) == 2
    assert any(line.startswith("to u000001 学员王小明同学 via ") for line in preview)
    assert f"  course_url = {LONG_URL}" in shown
    assert refused.code == 2 and len(refused.stderr.splitlines()) == 1
    assert f"ftp{LONG_URL[5:]}" in refused.stderr


def test_a_url_in_a_table_cell_is_never_folded(world: World) -> None:
    error = f"POST {LONG_URL} returned 404"
    with world.ctx.engine.begin() as conn:
        conn.execute(update(tables.deliveries).where(D.state == "failed").values(last_error=error))

    lines = world.lines("campaigns", "deliveries", CAMPAIGN)

    assert any(LONG_URL in line for line in lines), "\n".join(lines)
    for name in NAMES[2:]:
        assert any(name in line for line in lines)
