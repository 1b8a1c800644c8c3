"""The reply drain: one Celery message per burst of webhooks, batches of decisions, nothing
left undecided whatever lands between two of its statements.

On SQLite and PostgreSQL with real Redis; `enqueue` is recorded instead of sent, so what the
API and the tick ask for is seen directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.llmstub import LLMStub, answer, llm_stub
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_reply_context,
    start,
)
from worker.campaigns.materialise import materialise
from worker.campaigns.tick import tick
from worker.dispatch.keys import keys
from worker.replies import drain as drain_module
from worker.replies import handle
from worker.replies.drain import drain, request_drain
from worker.replies.handle import Batch, handle_batch
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

M, CV = tables.messages.c, tables.conversations.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_reply_context(db_url, redis_url, tmp_path, reply_delay_max_s=0)
    add_accounts(context.engine, ["a1", "a2"], channel="mock", url="http://127.0.0.1:9")
    add_contacts(context.engine, 40, channel="mock")
    yield context
    context.engine.dispose()


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The task names the drain module enqueues (not sent to the broker)."""
    sent: list[str] = []
    monkeypatch.setattr(drain_module, "enqueue", lambda name, *a, **kw: sent.append(name))
    return sent


@pytest.fixture
def kicked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The accounts whose lanes the drain wakes."""
    accounts: list[int] = []
    monkeypatch.setattr(drain_module, "kick_lane", lambda ctx, a, **kw: accounts.append(a))
    return accounts


def llm_world(db_url: str, redis_url: str, tmp_path: Path, stub: LLMStub, contacts: int) -> Context:
    """Account a1 and `contacts` learners, replies decided by the LLM `stub`, due at once."""
    ctx = make_reply_context(
        db_url, redis_url, tmp_path, llm_base_url=stub.base_url, llm_model="m",
        reply_delay_max_s=0,
    )  # fmt: skip
    add_accounts(ctx.engine, ["a1"], channel="mock", url="http://127.0.0.1:9")
    add_contacts(ctx.engine, contacts, channel="mock")
    return ctx


def write(ctx: Context, text: str, sender: str = "u000001", account: str = "a1") -> int:
    write.n += 1  # type: ignore[attr-defined]
    payload = {"message_id": f"d-{write.n}", "account": account, "from": sender, "text": text}  # type: ignore[attr-defined]
    return record_inbound(ctx.engine, "mock", InboundPayload.model_validate(payload)).message_id


write.n = 0  # type: ignore[attr-defined]


def decisions(ctx: Context) -> dict[int, tuple[str | None, str | None]]:
    stmt = select(M.id, M.action, M.reason).where(M.inbound.is_(True)).order_by(M.id)
    with ctx.engine.connect() as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}


def answers(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return len(conn.execute(select(M.id).where(M.inbound.is_(False))).all())


def test_a_burst_of_webhooks_enqueues_one_drain(ctx: Context, enqueued: list[str]) -> None:
    assert [request_drain(ctx) for _ in range(5)] == [True, False, False, False, False]
    assert enqueued == ["siyu.replies"]


def test_the_drain_decides_everything_in_batches_and_wakes_each_lane_once_a_batch(
    ctx: Context, enqueued: list[str], kicked: list[int]
) -> None:
    ids = [
        write(ctx, "早鸟价多少钱", sender=f"u{i:06d}", account="a1" if i % 2 else "a2")
        for i in range(1, 41)
    ]
    assert request_drain(ctx) is True
    batches: list[Batch] = []
    flag: list[int] = []

    def seen(batch: Batch) -> None:
        batches.append(batch)
        flag.append(ctx.redis.exists(keys(ctx).replies_queued))
        if len(batches) == 1:
            assert request_drain(ctx) is False, "while the drain works, requests send nothing"

    assert drain(ctx, on_batch=seen) == 40
    assert [b.loaded for b in batches] == [handle.BATCH, 40 - handle.BATCH, 0, 0]
    assert flag == [1, 1, 1, 0], "the flag is cleared once, before the last read"
    assert all(action == "reply" for action, _ in decisions(ctx).values())
    assert sorted(decisions(ctx)) == ids
    assert answers(ctx) == 40
    assert sorted(kicked) == [1, 1, 2, 2], "each account once per batch with answers"
    assert enqueued == ["siyu.replies"]


def test_a_request_made_after_the_last_batch_read_is_served_before_the_drain_leaves(
    ctx: Context, enqueued: list[str], kicked: list[int]
) -> None:
    """Forced ordering: after the drain's last (empty) read and before it releases its
    lease, a message is stored and requested; the request's own task finds the lease taken
    and leaves. The drain must go on and decide the message."""
    late: list[int] = []
    flag = keys(ctx).replies_queued

    def between(batch: Batch) -> None:
        if batch.loaded == 0 and not ctx.redis.exists(flag) and not late:
            late.append(write(ctx, "怎么进群"))
            assert request_drain(ctx) is True
            assert drain(ctx) == 0, "the request's task: the lease is taken"

    write(ctx, "早鸟价多少钱")
    assert request_drain(ctx) is True  # the flag is set until the drain clears it, leaving
    assert drain(ctx, on_batch=between) == 2
    assert decisions(ctx)[late[0]][0] is not None
    assert enqueued == ["siyu.replies", "siyu.replies"]


def test_a_message_whose_request_found_the_flag_set_is_decided_before_the_drain_leaves(
    ctx: Context, enqueued: list[str], kicked: list[int]
) -> None:
    """Forced ordering: the drain's batches found nothing and the flag is still set; a
    message is stored and its request sends nothing (the flag is set). The drain's read
    after clearing the flag must decide it."""
    late: list[int] = []
    flag = keys(ctx).replies_queued

    def between(batch: Batch) -> None:
        if batch.loaded == 0 and ctx.redis.exists(flag) and not late:
            late.append(write(ctx, "怎么进群"))
            assert request_drain(ctx) is False

    assert request_drain(ctx) is True
    write(ctx, "早鸟价多少钱")
    assert drain(ctx, on_batch=between) == 2
    assert decisions(ctx)[late[0]][0] is not None
    assert enqueued == ["siyu.replies"]


def test_a_drain_that_lost_its_lease_stops_and_leaves_the_flag_to_the_holder(
    ctx: Context, kicked: list[int]
) -> None:
    for i in range(1, handle.BATCH + 6):
        write(ctx, "早鸟价多少钱", sender=f"u{i % 40 + 1:06d}")
    names = keys(ctx)
    ctx.redis.set(names.replies_queued, "1")

    def taken_over(batch: Batch) -> None:  # the lease expired and another drain took it
        ctx.redis.set(names.replies, "someone-else")

    assert drain(ctx, on_batch=taken_over) == handle.BATCH
    assert ctx.redis.get(names.replies) == b"someone-else", "not released: not ours"
    assert ctx.redis.exists(names.replies_queued) == 1, "the holder clears it when it leaves"


def test_a_second_drain_leaves_while_one_runs(ctx: Context, kicked: list[int]) -> None:
    write(ctx, "早鸟价多少钱")
    inner: list[int] = []
    assert drain(ctx, on_batch=lambda b: inner.append(drain(ctx)) if not inner else None) == 1
    assert inner == [0]


def test_the_tick_requests_a_drain_for_a_message_left_undecided(
    ctx: Context, enqueued: list[str]
) -> None:
    message_id = write(ctx, "早鸟价多少钱")
    assert request_drain(ctx) is True  # and its task is lost: the flag stays set
    assert tick(ctx, force=True).replies_requested is False, "not stale yet"
    stale = utcnow() - timedelta(seconds=drain_module.STALE_S + 1)
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.messages).where(M.id == message_id).values(created_at=stale))
    assert tick(ctx, force=True).replies_requested is True, "despite the flag"
    assert enqueued == ["siyu.replies", "siyu.replies"]
    drain(ctx)
    assert tick(ctx, force=True).replies_requested is False, "decided"
    assert ctx.redis.exists(keys(ctx).replies_queued) == 0


def test_later_messages_of_a_batch_see_its_earlier_handoffs_and_opt_outs(ctx: Context) -> None:
    handoff, after_handoff = write(ctx, "转人工", sender="u000001"), write(ctx, "早鸟价多少钱")
    opt_out, after_opt_out = write(ctx, "退订", sender="u000002"), write(ctx, "早鸟价", "u000002")
    batch = handle_batch(ctx.engine, ctx.settings)
    assert batch.loaded == 4
    found = decisions(ctx)
    assert found[handoff][0] == "handoff" and found[opt_out][0] == "opt_out"
    assert found[after_handoff][0] == "handoff"
    assert (found[after_handoff][1] or "").startswith("waiting for a person")
    assert found[after_opt_out][0] == "handoff"
    assert (found[after_opt_out][1] or "").startswith("opted out earlier")
    with ctx.engine.connect() as conn:
        reasons = conn.execute(select(CV.handoff_reason).where(CV.status == "human")).scalars()
        assert [r for r in reasons if r and r.startswith("waiting")] == [], "first reason kept"


def test_each_message_of_a_batch_gets_its_own_history(ctx: Context) -> None:
    first = write(ctx, "你好")
    handle_batch(ctx.engine, ctx.settings)  # answered: the thread is now in, out
    second, third = write(ctx, "早鸟价多少钱"), write(ctx, "怎么进群")
    other = write(ctx, "课程安排", sender="u000003")
    with ctx.engine.connect() as conn:
        loaded = handle._load(conn, None)
        histories = handle._histories(conn, loaded, turns=2)
    assert [i.message_id for i in loaded] == [second, third, other]
    texts = {m: [t.text for t in turns] for m, turns in histories.items()}
    with ctx.engine.connect() as conn:
        (answer_text,) = conn.execute(select(M.text).where(M.inbound.is_(False))).one()
    assert texts[second] == ["你好", answer_text]
    assert texts[third] == [answer_text, "早鸟价多少钱"]
    assert texts[other] == []
    assert first < second


def test_with_an_llm_the_answers_of_a_batch_are_awaited_side_by_side(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    arrived, together = [0], threading.Condition()
    seen: list[int] = []

    def wait_for_the_others() -> None:  # each request waits (up to 5 s) until all 3 arrived
        with together:
            arrived[0] += 1
            together.notify_all()
            together.wait_for(lambda: arrived[0] >= 3, timeout=5)
            seen.append(arrived[0])

    reply = answer("reply", "您好，早鸟价请以课程页面为准。")
    script = [replace(reply, on_request=wait_for_the_others) for _ in range(3)]
    with llm_stub(*script) as stub:
        ctx = llm_world(db_url, redis_url, tmp_path, stub, contacts=3)
        for i in (1, 2, 3):
            write(ctx, "早鸟价多少钱", sender=f"u{i:06d}")
        batch = handle_batch(ctx.engine, ctx.settings)
        ctx.engine.dispose()
    assert batch.loaded == 3 and len(stub.requests) == 3
    assert seen == [3, 3, 3], "the three requests were in flight at once"


def test_the_links_a_campaign_sent_a_learner_may_be_repeated_to_that_learner_only(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The campaign variables ground an answer for the learners the campaign reached through
    that account (read in the batch's one query), and for no one else."""
    link = "课程链接在这里：https://edu.example.com/py"
    with llm_stub(answer("reply", link), answer("reply", link)) as stub:
        ctx = llm_world(db_url, redis_url, tmp_path, stub, contacts=2)
        add_campaign(ctx, "c1", ["a1"])
        materialise(ctx, start(ctx, "c1").id)  # type: ignore[arg-type]
        with ctx.engine.begin() as conn:
            sent = select(tables.contacts.c.id).where(tables.contacts.c.external_id == "u000001")
            conn.execute(
                update(tables.deliveries)
                .where(tables.deliveries.c.contact_id == sent.scalar_subquery())
                .values(state="sent", sent_at=utcnow())
            )
        reached, other = write(ctx, "课程链接发我一下"), write(ctx, "课程链接发我一下", "u000002")
        handle_batch(ctx.engine, ctx.settings)
        found = decisions(ctx)
        ctx.engine.dispose()
    assert found[reached][0] == "reply", found[reached]
    assert found[other][0] == "handoff", found[other]
