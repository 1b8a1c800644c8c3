"""End to end on the `telegram` channel: real `siyu worker` processes send campaigns through two
bots to the local Bot API (`tests/support/telegram_api.py`); every attempt is counted there, so
exactly-once is proven where the learners would see it, through a 429, a learner who blocked
the bot and a chat that does not exist. The blocked learner is suppressed and never tried again;
a long text arrives as parts in order; the tokens show up nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from tests.support.cli import siyu_on
from tests.support.cluster import running_workers, worker_env
from tests.support.telegram_api import BotApi, running_bot_api, too_many_requests
from tests.support.world import add_campaign, make_context, start
from worker.campaigns.lifecycle import CampaignSpec, create_campaign
from worker.campaigns.status import campaign_status
from worker.runtime import Context
from worker.store import tables
from worker.store.models import Contact, Segment, utcnow

pytestmark = pytest.mark.slow
TOKENS = {
    "bot1": "7000000001:AAE1kq9ZsL4wXbN7vC2mR5tY8uJ3hG6fD0p",
    "bot2": "7000000002:AAG8mZ_3vQx-Wn5Lb9Kc2Rj7Hs4Tf1Yd6Ue",
}
CHATS = [str(500_000_000 + i) for i in range(1, 21)]
BLOCKED, MISSING = CHATS[4], CHATS[9]
LONG_CHATS = ["600000001", "600000002"]
OUTLINE = "\n".join(f"第{i}课：" + "变量、循环与函数。" * 10 for i in range(1, 61))  # ~5,700
D, CT, SP = tables.deliveries.c, tables.contacts.c, tables.suppressions.c


def add_chats(engine: Engine, chat_ids: list[str], tag: str) -> None:
    now = utcnow()
    rows = [
        {"channel": "telegram", "external_id": chat_id, "name": f"学员{chat_id[-2:]}",
         "tags": [tag], "attrs": {}, "created_at": now, "updated_at": now}
        for chat_id in chat_ids
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Contact), rows)


def add_long_campaign(ctx: Context, name: str) -> None:
    """A campaign to the `long` contacts whose text (name and outline) needs two parts."""
    (ctx.settings.templates_dir / "long.j2").write_text(
        "{{ contact.name }}，课程大纲：\n{{ outline }}", encoding="utf-8"
    )
    with Session(ctx.engine) as session:
        session.add(Segment(name=name, expression="tag = long"))
        session.commit()
    spec = CampaignSpec(name, name, "long", list(TOKENS), variables={"outline": OUTLINE})
    create_campaign(ctx.engine, ctx.settings.templates_dir, spec)


def delivery(ctx: Context, campaign: str, chat_id: str) -> tuple[str, str | None]:
    """The state and reason of the delivery of `campaign` to `chat_id`."""
    runs, campaigns = tables.campaign_runs.c, tables.campaigns.c
    stmt = (
        select(D.state, D.reason)
        .join(tables.contacts, CT.id == D.contact_id)
        .join(tables.campaign_runs, runs.id == D.run_id)
        .join(tables.campaigns, campaigns.id == runs.campaign_id)
        .where(CT.external_id == chat_id, campaigns.name == campaign)
    )
    with ctx.engine.connect() as conn:
        state, reason = conn.execute(stmt).one()
    return state, reason


def suppression_reasons(ctx: Context) -> dict[str, str]:
    stmt = select(CT.external_id, SP.reason).join(tables.contacts, CT.id == SP.contact_id)
    with ctx.engine.connect() as conn:
        return {chat_id: reason for chat_id, reason in conn.execute(stmt).all()}


def test_a_campaign_reaches_each_learner_once_and_a_blocked_one_never_again(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_bot_api(*TOKENS.values()) as api:
        api.block(BLOCKED)
        api.forget(MISSING)
        api.then(too_many_requests(1))
        with siyu_on(db_url, monkeypatch, capsys) as siyu:
            added = [
                siyu("accounts", "add", name, "--channel", "telegram", "--config",
                     f"token={token}", "--config", f"api_base={api.url}", "--config",
                     "timeout_s=2")
                for name, token in TOKENS.items()
            ]  # fmt: skip
        assert [a.code for a in added] == [0, 0], added
        add_chats(ctx.engine, CHATS, "python")
        add_chats(ctx.engine, LONG_CHATS, "long")
        add_campaign(ctx, "c1", list(TOKENS))
        env = worker_env(
            ctx, db_url, redis_url, {"telegram": "[account]\n"},
            SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
        )  # fmt: skip
        with running_workers(env, tmp_path, log_level="INFO") as workers:
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 120)
            assert_first_campaign(ctx, api)
            first_attempts, blocked_attempts = len(api.attempts), api.attempts_to(BLOCKED)
            add_campaign(ctx, "c2", list(TOKENS))
            add_long_campaign(ctx, "c3")
            start(ctx, "c2")
            start(ctx, "c3")
            workers.await_completed(ctx, "c2", 120)
            workers.await_completed(ctx, "c3", 120)
        assert len(api.attempts) - first_attempts == 19 + 2 * 2, "c2 but the blocked; c3's parts"
        assert api.attempts_to(BLOCKED) == blocked_attempts, (
            "the blocked learner is not tried again"
        )
        assert delivery(ctx, "c2", BLOCKED)[0] == "skipped"
        assert campaign_status(ctx.engine, "c2")["counts"]["sent"] == 18
        assert_long_campaign(api)
        assert api.duplicate_attempts == 0
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        listed = siyu("accounts", "list", "--json")
    assert {a["name"] for a in json.loads(listed.stdout)} == set(TOKENS)
    logs = workers.logs(tail=None)
    assert "/bot7000000001:***/sendMessage" in logs, "httpx's request lines, the token hidden"
    outputs = [logs, listed.stdout, listed.stderr, *(a.stdout + a.stderr for a in added)]
    for where in outputs:
        for token in TOKENS.values():
            assert token not in where and token.partition(":")[2] not in where
    ctx.engine.dispose()


def assert_first_campaign(ctx: Context, api: BotApi) -> None:
    assert len(api.attempts) == 21, "20 learners, and the one refused with 429 tried once more"
    [limited] = [a for a in api.attempts if a.reply is not None]  # the 429
    resumed = next(a for a in api.attempts if a.bot_id == limited.bot_id and a.at > limited.at)
    assert resumed.at - limited.at >= 1.0, "nothing went to that bot before retry_after passed"
    assert all(a.body == {"chat_id": a.chat_id, "text": a.text} for a in api.attempts)
    by_chat = api.by_chat()
    reached = [c for c in CHATS if c not in (BLOCKED, MISSING)]
    assert by_chat.keys() == set(reached), "nothing to the blocked or the missing chat"
    assert all(len(by_chat[c]) == 1 and "开课啦" in by_chat[c][0] for c in reached)
    assert api.duplicate_attempts == 0, "no (chat, text) was accepted twice"
    assert delivery(ctx, "c1", BLOCKED) == ("skipped", "blocked")
    assert suppression_reasons(ctx) == {BLOCKED: "blocked"}
    assert delivery(ctx, "c1", MISSING) == ("failed", "recipient_unreachable")
    assert campaign_status(ctx.engine, "c1")["counts"]["sent"] == 18


def assert_long_campaign(api: BotApi) -> None:
    for chat_id in LONG_CHATS:
        parts = api.sent_to(chat_id)
        assert len(parts) == 2 and all(len(part) <= 4096 for part in parts)
        assert "\n".join(parts) == f"学员{chat_id[-2:]}，课程大纲：\n{OUTLINE}", "in order, whole"
