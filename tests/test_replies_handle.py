"""The reply task's work on stored inbound messages: opt-out, handoff, answers, explained.

On SQLite and PostgreSQL with the shipped knowledge and the retrieval responder (no LLM).
Inbound messages are stored as the API stores them; the CLI reads the results in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.cli import Siyu, siyu_on
from tests.support.world import add_accounts, add_campaign, add_contacts, make_reply_context, start
from worker.campaigns.materialise import materialise
from worker.replies.handle import handle_inbound
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context
from worker.store import tables

M, CV, CT, D, S = (
    tables.messages.c,
    tables.conversations.c,
    tables.contacts.c,
    tables.deliveries.c,
    tables.suppressions.c,
)


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_reply_context(db_url, redis_url, tmp_path)
    add_accounts(context.engine, ["a1"], channel="mock", url="http://127.0.0.1:9")
    add_contacts(context.engine, 3, channel="mock")
    yield context
    context.engine.dispose()


@pytest.fixture
def siyu(
    ctx: Context, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Siyu]:
    with siyu_on(db_url, monkeypatch, capsys) as run:
        yield run


def inbound(ctx: Context, text: str, sender: str = "u000002", n: list[int] = [0]) -> int:  # noqa: B006
    n[0] += 1
    payload = InboundPayload.model_validate(
        {"message_id": f"in-{n[0]}", "account": "a1", "from": sender, "text": text}
    )
    return record_inbound(ctx.engine, "mock", payload).message_id


def handled(ctx: Context, text: str, sender: str = "u000002") -> str | None:
    done = handle_inbound(ctx.engine, ctx.settings, inbound(ctx, text, sender))
    return None if done is None else str(done.decision.action)


def rows(ctx: Context, query: object) -> list[tuple[object, ...]]:
    with ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[call-overload]


def outbound(ctx: Context) -> list[str]:
    return [r[0] for r in rows(ctx, select(M.text).where(M.inbound.is_(False)).order_by(M.id))]  # type: ignore[misc]


def test_an_opt_out_mid_campaign_skips_the_pending_delivery_and_later_campaigns(
    ctx: Context,
) -> None:
    add_campaign(ctx, "c1", ["a1"])
    materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
    assert handled(ctx, "退订") == "opt_out"
    sends = select(CT.external_id, D.state).join(tables.contacts).where(D.run_id.is_not(None))
    assert dict(rows(ctx, sends)) == {
        "u000001": "pending",
        "u000002": "skipped",
        "u000003": "pending",
    }
    assert rows(ctx, select(D.reason).where(D.state == "skipped")) == [("opted_out",)]
    assert rows(ctx, select(S.reason)) == [("opted_out",)]
    [confirmation] = outbound(ctx)
    assert "退订" in confirmation
    add_campaign(ctx, "c2", ["a1"], where="tag = python")
    materialise(ctx, start(ctx, "c2", force=False).id)  # type: ignore[arg-type]
    later = rows(ctx, sends.add_columns(D.reason))
    assert ("u000002", "skipped", "opted_out") in later[3:]


def test_a_message_is_decided_once_however_often_the_task_runs(ctx: Context) -> None:
    message_id = inbound(ctx, "退订")
    assert handle_inbound(ctx.engine, ctx.settings, message_id) is not None
    assert handle_inbound(ctx.engine, ctx.settings, message_id) is None
    assert len(outbound(ctx)) == 1


def test_a_knowledge_question_is_answered_from_the_knowledge_with_its_source(
    ctx: Context,
) -> None:
    assert handled(ctx, "早鸟价是多少钱？") == "reply"
    [(action, reason, sources)] = rows(
        ctx, select(M.action, M.reason, M.sources).where(M.inbound.is_(True))
    )
    assert action == "reply" and str(reason).startswith("retrieval: ")
    assert sources and all(str(s).startswith("knowledge/") for s in sources)  # type: ignore[attr-defined]
    [answer] = outbound(ctx)
    assert "699" in answer
    # Queued as a reply delivery through the same account, due after reading and typing time.
    [(state, account_id, run_id, due, made)] = rows(
        ctx,
        select(D.state, D.account_id, D.run_id, D.not_before, D.created_at)
        .join(tables.messages, M.id == D.message_id)
        .where(M.inbound.is_(False)),
    )
    assert (state, account_id, run_id) == ("pending", 1, None)
    settings = ctx.settings
    wait = (due - made).total_seconds()  # type: ignore[operator]
    assert settings.reply_delay_min_s + len(answer) / settings.reply_typing_cps * 0.85 <= wait
    assert wait <= settings.reply_delay_max_s


def test_a_handoff_waits_in_the_inbox_and_gets_no_automatic_answer(
    ctx: Context, siyu: Siyu
) -> None:
    assert handled(ctx, "转人工") == "handoff"
    assert rows(ctx, select(CV.status)) == [("human",)]
    before = outbound(ctx)
    assert handled(ctx, "早鸟价多少钱") == "handoff"
    assert outbound(ctx) == before, "a person answers now"
    waiting = json.loads(siyu("inbox", "--json").stdout)
    assert [(w["contact"], w["account"]) for w in waiting] == [("u000002", "a1")]
    assert waiting[0]["why"].startswith("handoff: ")
    assert [m["text"] for m in waiting[0]["last_messages"]][-1] == "早鸟价多少钱"
    text = siyu("inbox").stdout
    assert "u000002" in text and "why: handoff: " in text


def test_conversations_show_explains_every_decision(ctx: Context, siyu: Siyu) -> None:
    handled(ctx, "早鸟价是多少钱？", sender="u000001")
    handled(ctx, "你是机器人吗", sender="u000001")
    [thread] = json.loads(siyu("conversations", "show", "u000001", "--json").stdout)
    decisions = [m.get("decision") for m in thread["messages"] if m["from"] == "learner"]
    assert decisions == ["reply", "reply"]
    assert [m["reason"].split(":")[0] for m in thread["messages"] if m["from"] == "learner"] == [
        "retrieval",
        "disclosure",
    ]
    shown = siyu("conversations", "show", "u000001")
    assert (
        shown.code == 0
        and "reply: retrieval: " in shown.stdout
        and "from knowledge/" in shown.stdout
    )
    missing = siyu("conversations", "show", "nobody")
    assert missing.code == 2 and "no conversation with 'nobody'" in missing.stderr


def test_two_tasks_that_loaded_the_same_message_record_one_decision(ctx: Context) -> None:
    """Forced ordering: both load the undecided message before either records."""
    from worker.replies import handle
    from worker.replies.model import Action, Decision

    message_id = inbound(ctx, "早鸟价多少钱")
    with ctx.engine.connect() as conn:
        [first], [second] = handle._load(conn, [message_id]), handle._load(conn, [message_id])
    decision = Decision(Action.REPLY, "早鸟价 699 元", "test")
    assert handle._record(ctx.engine, [handle.Decided(first, decision, 0.0)]) == {message_id}
    assert handle._record(ctx.engine, [handle.Decided(second, decision, 0.0)]) == set()
    assert outbound(ctx) == ["早鸟价 699 元"]
    assert rows(ctx, select(D.message_id).where(D.run_id.is_(None))) == [(2,)], "one delivery"


def test_the_tick_purges_conversations_past_their_retention_at_most_hourly(ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from worker.campaigns.tick import tick
    from worker.dispatch.keys import keys
    from worker.store.models import utcnow

    handled(ctx, "早鸟价多少钱", sender="u000001")
    handled(ctx, "早鸟价多少钱", sender="u000002")
    days = ctx.settings.conversation_retention_days

    def age(external_id: str, by_days: int) -> None:
        contact = select(CT.id).where(CT.external_id == external_id).scalar_subquery()
        with ctx.engine.begin() as conn:
            conn.execute(
                update(tables.conversations)
                .where(CV.contact_id == contact)
                .values(updated_at=utcnow() - timedelta(days=by_days))
            )

    def kept() -> list[tuple[object, ...]]:
        return rows(ctx, select(CT.external_id).join(tables.conversations).order_by(CT.id))

    age("u000001", days + 1)
    age("u000002", days - 1)
    ctx.redis.delete(keys(ctx).purge)
    tick(ctx, force=True)
    assert kept() == [("u000002",)]
    assert len(rows(ctx, select(M.id))) == 2, "u000001's messages went with it"
    age("u000002", days + 1)
    tick(ctx, force=True)
    assert kept() == [("u000002",)], "purged at most once an hour"
    ctx.redis.delete(keys(ctx).purge)
    tick(ctx, force=True)
    assert kept() == [] and rows(ctx, select(M.id)) == []


def test_a_learner_writing_again_keeps_the_conversation_from_the_purge(ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from worker.replies.retention import purge
    from worker.store.models import utcnow

    handled(ctx, "早鸟价多少钱", sender="u000001")
    days = ctx.settings.conversation_retention_days
    with ctx.engine.begin() as conn:
        conn.execute(
            update(tables.conversations).values(updated_at=utcnow() - timedelta(days=days + 1))
        )
    inbound(ctx, "还在吗", sender="u000001")
    assert purge(ctx.engine, days) == 0
    assert len(rows(ctx, select(CV.id))) == 1
