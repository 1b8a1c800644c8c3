"""Replies leave through the account the learner wrote to: ahead of campaign sends, after a
human-like delay, exactly once, outside recipient caps, and never to someone who opted out
(except the opt-out's own confirmation and a person's answer).

In-process lanes on SQLite and PostgreSQL with real Redis and the memory channel, whose hub
counts every attempt (`duplicates`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from tests.support.cli import Siyu, one_error_line, siyu_on
from tests.support.rows import make_due
from tests.support.schema import as_made_before_migrations
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_reply_context,
    start,
    write_policies,
)
from worker.campaigns.materialise import materialise
from worker.channels.memory import HUB
from worker.dispatch import backlog, outbox, runs
from worker.dispatch.compose import idempotency_key
from worker.dispatch.lane import run_lane
from worker.dispatch.pacers import pacer_for, sent_on_day
from worker.dispatch.reconcile import reconcile
from worker.limiter.localtime import LocalDay
from worker.replies.handle import handle_inbound
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context
from worker.store import tables
from worker.store.db import installation_id
from worker.store.models import utcnow

M, CV, D = tables.messages.c, tables.conversations.c, tables.deliveries.c


def context(db_url: str, redis_url: str, tmp_path: Path, **settings: object) -> Context:
    HUB.clear()
    ctx = make_reply_context(db_url, redis_url, tmp_path, **settings)
    add_accounts(ctx.engine, ["a1", "a2"])
    add_contacts(ctx.engine, 20)
    return ctx


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    """Replies are due at once (`SIYU_REPLY_DELAY_MAX_S=0`)."""
    made = context(db_url, redis_url, tmp_path, reply_delay_max_s=0)
    yield made
    made.engine.dispose()


@pytest.fixture
def siyu(
    ctx: Context, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    monkeypatch.setenv("SIYU_REDIS_URL", ctx.settings.redis_url or "")
    with siyu_on(db_url, monkeypatch, capsys) as run:
        yield run


def write(ctx: Context, said: str, sender: str = "u000002", account: str = "a1") -> int:
    """What the API does with a verified inbound webhook: store the message."""
    write.count += 1  # type: ignore[attr-defined]
    payload = InboundPayload.model_validate(
        {"message_id": f"in-{write.count}", "account": account, "from": sender, "text": said}  # type: ignore[attr-defined]
    )
    return record_inbound(ctx.engine, "memory", payload).message_id


write.count = 0  # type: ignore[attr-defined]


def decide(ctx: Context, said: str, sender: str = "u000002", account: str = "a1") -> str:
    handled = handle_inbound(ctx.engine, ctx.settings, write(ctx, said, sender, account))
    assert handled is not None
    return str(handled.decision.action)


def replies(ctx: Context) -> list[tuple[str, str, str | None, int]]:
    """(author, state, reason, account id) of every reply delivery, oldest first."""
    stmt = (
        select(M.author, D.state, D.reason, D.account_id)
        .join(tables.messages, M.id == D.message_id)
        .order_by(D.id)
    )
    with ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]  # type: ignore[misc]


def rows(ctx: Context, query: Any) -> list[tuple[Any, ...]]:
    with ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def sent_texts() -> list[str]:
    return [message.text for _, message in HUB.by_key.values()]


def campaign_running(ctx: Context, accounts: list[str], n: int = 20) -> int:
    add_campaign(ctx, "c1", accounts)
    run = start(ctx, "c1")
    assert run.id is not None
    materialise(ctx, run.id)
    return run.id


def test_a_reply_goes_through_the_receiving_account_ahead_of_campaign_sends(
    ctx: Context, siyu: Siyu
) -> None:
    campaign_running(ctx, ["a1"])
    assert decide(ctx, "早鸟价多少钱？", account="a1") == "reply"
    [(author, state, _, account_id)] = replies(ctx)
    assert (author, state) == ("assistant", "pending")
    assert account_id == 1, "the account the learner wrote to"
    result = run_lane(ctx, 1, slice_s=5)
    assert result.acquired and result.sent == 21
    first_key, (_, first) = next(iter(HUB.by_key.items()))
    assert "699" in first.text and first.to == "u000002", "the reply went first"
    message_id = 2  # the learner's message is 1, the answer 2
    assert first_key == idempotency_key(installation_id(ctx.engine), None, 2, message_id)
    assert HUB.duplicates == 0 and len(HUB.by_key) == 21
    assert replies(ctx)[0][1] == "sent"
    [conversation] = json.loads(siyu("conversations", "show", "u000002", "--json").stdout)
    answer = conversation["messages"][-1]
    assert answer["from"] == "assistant" and answer["state"] == "sent" and "sent_at" in answer
    assert "delivery: sent at " in siyu("conversations", "show", "u000002").stdout


def test_a_reply_waits_for_reading_and_typing_time_then_the_tick_wakes_its_lane(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = context(db_url, redis_url, tmp_path, reply_delay_min_s=3, reply_delay_max_s=30)
    try:
        assert decide(ctx, "课程多少钱") == "reply"
        [(due, made)] = rows(ctx, select(D.not_before, D.created_at))
        assert timedelta(seconds=3) < due - made <= timedelta(seconds=30)
        assert backlog.pending_accounts(ctx.engine, []) == [], "not due yet: nothing to wake"
        assert run_lane(ctx, 1, slice_s=2).sent == 0
        assert sent_texts() == []
        make_due(ctx)
        # No campaign runs at all: the tick still finds the account with a due reply.
        assert backlog.pending_accounts(ctx.engine, []) == [1]
        assert backlog.has_pending(ctx.engine, 1, [])
        assert run_lane(ctx, 1, slice_s=2).sent == 1
        assert backlog.pending_accounts(ctx.engine, []) == []
    finally:
        ctx.engine.dispose()


def test_a_reply_counts_against_account_limits_but_not_recipient_caps(
    ctx: Context, tmp_path: Path
) -> None:
    policy = "[account]\n[recipient]\nper_day = 1\n"
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl", {"memory": policy})
    campaign_running(ctx, ["a1"])
    assert run_lane(ctx, 1, slice_s=5).sent == 20, "everyone used their one marketing message"
    assert decide(ctx, "怎么进群") == "reply"
    assert run_lane(ctx, 1, slice_s=5).sent == 1, "a reply is not marketing: no cap holds it"
    assert replies(ctx)[0][1:3] == ("sent", None)
    now_ms = int(time.time() * 1000)
    today = LocalDay("around now", now_ms - 3_600_000, now_ms + 3_600_000)
    assert sent_on_day(ctx, 1, today) == 21, "the account's day count includes the reply"


def test_a_reply_is_not_held_back_by_pacing_toward_a_campaigns_end(
    ctx: Context, tmp_path: Path
) -> None:
    policy = "[account]\nper_minute = 600\n"
    ctx.settings.rate_limits_dir = write_policies(tmp_path / "rl", {"memory": policy})
    end = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=1)
    add_campaign(ctx, "c1", ["a1"], end=end.strftime("%Y-%m-%d %H:%M"))
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    account = runs.load_account(ctx.engine, 1)
    assert account is not None
    pacer = pacer_for(ctx, account)
    pacer.batch_size(200)
    [first] = pacer.reserve(1)
    [reply] = pacer.reserve(1, paced=False)
    [second] = pacer.reserve(1)
    assert second - reply > 60, "20 campaign sends spread over the hour left"
    assert reply - first < 5, "a reply takes the next slot the limits allow"


def test_an_opt_out_stops_a_queued_answer_but_its_confirmation_goes(ctx: Context) -> None:
    assert decide(ctx, "早鸟价多少钱") == "reply"
    assert decide(ctx, "退订") == "opt_out"
    assert [(a, s, r) for a, s, r, _ in replies(ctx)] == [
        ("assistant", "skipped", "opted_out"),
        ("assistant", "pending", None),
    ]
    assert run_lane(ctx, 1, slice_s=5).sent == 1
    [confirmation] = sent_texts()
    assert "退订" in confirmation
    assert HUB.duplicates == 0


def test_the_last_look_holds_an_answer_claimed_before_the_opt_out(ctx: Context) -> None:
    """Forced ordering: the lane claims the answer, then the opt-out commits, then the lane
    marks its rows `sending`. The answer is skipped; the confirmation, queued after the
    opt-out, passes the same last look."""
    assert decide(ctx, "早鸟价多少钱") == "reply"
    [answer] = outbox.claim_replies(ctx.engine, 1, 10, "lane-1", 60)
    assert decide(ctx, "退订") == "opt_out"
    [confirmation] = outbox.claim_replies(ctx.engine, 1, 10, "lane-1", 60)
    marked = outbox.mark_sending(ctx.engine, [answer.id, confirmation.id], "lane-1")
    assert marked == {confirmation.id}
    [missed] = outbox.last_look_misses(ctx.engine, [answer.id], "lane-1")
    assert (missed.state, missed.reason) == ("skipped", "opted_out")


def test_a_learner_who_opted_out_earlier_is_handed_to_a_person_not_answered(
    ctx: Context,
) -> None:
    assert decide(ctx, "退订") == "opt_out"
    assert decide(ctx, "早鸟价多少钱") == "handoff"
    with ctx.engine.connect() as conn:
        assert conn.execute(select(CV.status, CV.handoff_reason)).one()[0] == "human"
        reason = conn.execute(select(M.reason).order_by(M.id.desc()).limit(1)).scalar()
    assert str(reason).startswith("opted out earlier")


def test_an_ambiguous_reply_send_is_settled_by_its_key_never_sent_twice(ctx: Context) -> None:
    """A lane died after the platform accepted the reply but before it recorded `sent`."""
    assert decide(ctx, "怎么进群") == "reply"
    assert run_lane(ctx, 1, slice_s=5).sent == 1
    with ctx.engine.begin() as conn:  # as the dead lane left it
        conn.execute(
            update(tables.deliveries).values(
                state="sending", lease_owner="dead", lease_until=utcnow() - timedelta(seconds=5)
            )
        )
    reconcile(ctx)
    assert replies(ctx)[0][1] == "sent"
    assert run_lane(ctx, 1, slice_s=2).sent == 0
    assert HUB.duplicates == 0 and len(HUB.by_key) == 1


def test_a_person_replies_through_the_same_account_and_closes_the_handoff(
    ctx: Context, siyu: Siyu
) -> None:
    assert decide(ctx, "转人工", account="a2") == "handoff"
    [waiting] = json.loads(siyu("inbox", "--json").stdout)
    out = siyu("reply", f"#{waiting['conversation']}", "  您好，我是王老师，马上为您处理  ").stdout
    assert "reply to u000002 via a2 queued" in out and "the handoff is closed" in out
    assert json.loads(siyu("inbox", "--json").stdout) == []
    assert replies(ctx)[-1] == ("human", "pending", None, 2)
    assert run_lane(ctx, 2, slice_s=5).sent == 2  # the holding reply, then the person's
    assert sent_texts()[-1] == "您好，我是王老师，马上为您处理"
    with ctx.engine.connect() as conn:
        assert conn.execute(select(CV.status, CV.handoff_reason)).one() == ("assistant", None)


def test_a_persons_reply_reaches_a_learner_who_opted_out(ctx: Context, siyu: Siyu) -> None:
    assert decide(ctx, "退订") == "opt_out"
    assert decide(ctx, "那我退款怎么办") == "handoff"
    result = siyu("reply", "1", "退款请联系 400-000-0000")
    assert "opted out; your reply goes because a person wrote it" in result.stderr
    assert run_lane(ctx, 1, slice_s=5).sent == 2  # the confirmation, then the person's answer
    assert sent_texts()[-1] == "退款请联系 400-000-0000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["abc", "hi"],
            "CONVERSATION is the number `siyu inbox` shows, such as 12 or #12; got 'abc'",
        ),
        (["99", "hi"], "no conversation #99; `siyu inbox` lists those waiting"),
        (["1", "   "], "the reply is empty: give the text to send"),
        (["1", "长" * 4097], "the reply is 4,097 characters; channel 'memory' allows 4,096"),
    ],
)
def test_a_reply_an_operator_cannot_send_is_refused_and_nothing_is_queued(
    ctx: Context, siyu: Siyu, args: list[str], message: str
) -> None:
    assert decide(ctx, "转人工") == "handoff"
    before = replies(ctx)
    assert one_error_line(siyu("reply", *args)) == f"error: {message}"
    assert replies(ctx) == before


def nullable(ctx: Context) -> dict[str, bool]:
    """Whether `run_id` and `message_id` (where present) of deliveries may be NULL."""
    with ctx.engine.connect() as conn:
        columns = inspect(conn).get_columns("deliveries")
    return {c["name"]: c["nullable"] for c in columns if c["name"] in ("run_id", "message_id")}


def test_an_older_database_gets_nullable_run_ids_and_the_message_column(ctx: Context) -> None:
    """`siyu init` upgrades a deliveries table made before replies were deliveries."""
    from worker.store.db import init_db, is_sqlite

    run_id = campaign_running(ctx, ["a1"])
    with ctx.engine.begin() as conn:
        as_made_before_migrations(conn)  # that siyu knew no migrations
        conn.execute(text("DROP INDEX uq_delivery_message"))
        if is_sqlite(ctx.engine):
            conn.execute(text("ALTER TABLE deliveries RENAME TO deliveries_now"))
            old = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'deliveries_now'")
            ).scalar_one()
            mentioned = re.compile(r"\bmessage_id\b")
            old = "\n".join(line for line in old.splitlines() if not mentioned.search(line))
            old = old.replace("deliveries_now", "deliveries").replace(
                "run_id INTEGER,", "run_id INTEGER NOT NULL,"
            )
            conn.execute(text(old))
            columns = ", ".join(c.name for c in tables.deliveries.columns if c.name != "message_id")
            conn.execute(
                text(f"INSERT INTO deliveries ({columns}) SELECT {columns} FROM deliveries_now")  # noqa: S608  (our column names)
            )
            conn.execute(text("DROP TABLE deliveries_now"))
        else:
            conn.execute(text("ALTER TABLE deliveries DROP COLUMN message_id"))
            conn.execute(text("ALTER TABLE deliveries ALTER COLUMN run_id SET NOT NULL"))
    assert nullable(ctx) == {"run_id": False}
    init_db(ctx.engine)
    init_db(ctx.engine)  # idempotent
    assert nullable(ctx) == {"run_id": True, "message_id": True}
    with ctx.engine.connect() as conn:
        kept = conn.execute(select(D.run_id).distinct()).scalars().all()
    assert kept == [run_id], "every delivery kept"
    assert decide(ctx, "怎么进群") == "reply"
    assert len(replies(ctx)) == 1
    with pytest.raises(IntegrityError), ctx.engine.begin() as conn:
        row = conn.execute(select(D.message_id).where(D.message_id.is_not(None))).scalar()
        conn.execute(tables.deliveries.insert().values(message_id=row, contact_id=2))
