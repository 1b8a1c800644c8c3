"""End to end on the `wecom` channel: two real `siyu worker` processes send campaigns to the
local WeCom (`tests/support/wecom_api.py`) over HTTP. In app mode through a concurrency limit
(45033; the 60 s frequency block of 45009 is proven in the channel tests), a busy WeCom (-1)
and every access token expiring mid-campaign; in customer mode as tasks the member confirms,
whose per-customer results the tick then records, and a task left unconfirmed for three days
withdrawn before it fails as `not_confirmed`. Every attempt is counted at the fake, so
exactly-once is proven where WeCom would see it, and the workers log at INFO, so httpx's
request lines are there to be searched for the secret and the tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.cli import siyu_on
from tests.support.cluster import running_workers, wait_for, worker_env
from tests.support.wecom_api import EXPIRE, PASS, Errcode, running_wecom
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.status import campaign_status
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

pytestmark = pytest.mark.slow
SECRET = "Zq8vL2mN5pR7tW0yB3dF6hJ9kX1cV4gS7uE0aT2iO5w"
CONTACTS = [f"u{i:06d}" for i in range(1, 21)]
D, CT = tables.deliveries.c, tables.contacts.c


def test_an_app_campaign_reaches_each_member_once_through_wecom(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_wecom(secret=SECRET, users=set(CONTACTS)) as wecom:
        # A concurrency limit, later every token expires, then WeCom is busy once.
        wecom.then("message/send", *[PASS] * 3, Errcode(45033), *[PASS] * 4, EXPIRE,
                   *[PASS] * 3, Errcode(-1))  # fmt: skip
        add_accounts(
            ctx.engine, ["wc1", "wc2"], channel="wecom", corp_id=wecom.corp_id, secret=SECRET,
            agent_id=str(wecom.agent_id), api_base=wecom.base, timeout_s="2",
        )  # fmt: skip
        add_contacts(ctx.engine, len(CONTACTS), channel="wecom")
        add_campaign(ctx, "c1", ["wc1", "wc2"])
        env = worker_env(
            ctx, db_url, redis_url, {"wecom": "[account]\nper_second = 4\n"},
            SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
            SIYU_LANE_SLICE_S="1",  # many short lanes, each building its channel
        )  # fmt: skip
        with running_workers(env, tmp_path, log_level="INFO") as workers:
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 150)
        sends = wecom.calls("message/send")
        refused = [a for a in sends if a.errcode == 42001]
        assert [a.errcode for a in sends].count(45033) == 1
        assert [a.errcode for a in sends].count(-1) == 1
        assert 1 <= len(refused) <= 4, "one per lane (2 accounts x 2 processes) in flight"
        assert len(sends) == len(CONTACTS) + 2 + len(refused), "each refusal tried once more"
        assert 2 <= wecom.token_fetches <= 4, "one token per process for every lane, renewed once"
        assert wecom.duplicate_attempts == 0, "no member got the same text twice"
        tokens = wecom.issued()
    assert sorted(m["to"] for m in wecom.messages) == CONTACTS
    assert all("开课啦" in m["content"] for m in wecom.messages)
    assert campaign_status(ctx.engine, "c1")["counts"]["sent"] == len(CONTACTS)
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        listed = siyu("accounts", "list", "--json")
    assert listed.code == 0 and {a["name"] for a in json.loads(listed.stdout)} == {"wc1", "wc2"}
    logs = workers.logs(tail=None)
    assert "message/send?access_token=***" in logs, "httpx logged the requests, masked"
    assert "is now cooldown (rate_limited)" in logs, "45033 cooled the account down"
    for where in (logs, listed.stdout, listed.stderr):
        for hidden in (SECRET, *tokens):
            assert hidden not in where
    ctx.engine.dispose()


def test_customer_tasks_are_followed_up_until_each_customers_result_is_known(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    learners = CONTACTS[:8]
    stranger = learners[-1]  # not a customer of the sender: WeCom refuses the task (40096)
    with running_wecom(secret=SECRET, customers=set(learners[:-1])) as wecom:
        with siyu_on(db_url, monkeypatch, capsys) as siyu:
            added = siyu(
                "accounts", "add", "m1", "--channel", "wecom",
                "--config", f"corp_id={wecom.corp_id}", "--config", f"secret={SECRET}",
                "--config", f"agent_id={wecom.agent_id}", "--config", "mode=customer",
                "--config", "sender=zhangsan", "--config", f"api_base={wecom.base}",
            )  # fmt: skip
        assert added.code == 0, added
        assert "policy wecom_customer" in added.stdout, "the customer policy, not the app's"
        add_contacts(ctx.engine, len(learners), channel="wecom")
        add_campaign(ctx, "c1", ["m1"])
        env = worker_env(
            ctx, db_url, redis_url, {"wecom_customer": "[account]\n"},
            SIYU_TICK_INTERVAL_S="1", SIYU_CONFIRMATION_SYNC_S="1",
        )  # fmt: skip
        with running_workers(env, tmp_path, log_level="INFO") as workers:
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 120)
            assert reasons(ctx) == {
                **dict.fromkeys(learners[:-1], ("sent", "awaiting_confirmation")),
                stranger: ("failed", "recipient_unreachable"),
            }, "nothing is delivered before the member confirms"
            task_of = {c: msgid for msgid, t in wecom.tasks.items() for c in t.status}
            assert sorted(task_of) == sorted(learners[:-1]) and len(wecom.tasks) == 7
            not_friend, got_one, unconfirmed = learners[:3]
            for customer, msgid in task_of.items():
                if customer != unconfirmed:
                    wecom.confirm(msgid, {not_friend: 2, got_one: 3})
            expected = {
                **dict.fromkeys(learners[3:-1], ("sent", None)),
                not_friend: ("failed", "recipient_unreachable"),
                got_one: ("failed", "recipient_error"),
                unconfirmed: ("sent", "awaiting_confirmation"),
                stranger: ("failed", "recipient_unreachable"),
            }
            assert wait_for(lambda: reasons(ctx) == expected, 30), reasons(ctx)
            with ctx.engine.begin() as conn:  # three days pass without the member
                conn.execute(
                    update(tables.deliveries)
                    .where(D.contact_id.in_(select(CT.id).where(CT.external_id == unconfirmed)))
                    .values(sent_at=utcnow() - timedelta(days=3, minutes=1))
                )
            expected[unconfirmed] = ("failed", "not_confirmed")
            assert wait_for(lambda: reasons(ctx) == expected, 30), reasons(ctx)
        [withdrawn] = wecom.calls("externalcontact/cancel_groupmsg_send")
        assert withdrawn.body == {"msgid": task_of[unconfirmed]} and withdrawn.errcode == 0
        wecom.confirm(task_of[unconfirmed])
        assert wecom.tasks[task_of[unconfirmed]].status == {unconfirmed: 0}, "too late to send"
        assert len(wecom.calls("externalcontact/add_msg_template")) == len(learners)
        assert wecom.duplicate_attempts == 0, "no customer got the same task twice"
        assert wecom.calls("externalcontact/get_groupmsg_send_result"), "the tick asked"
        tokens = wecom.issued()
    logs = workers.logs(tail=None)
    for hidden in (SECRET, *tokens):
        assert hidden not in logs and hidden not in added.stdout + added.stderr
    ctx.engine.dispose()


def reasons(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """Each contact's delivery: (state, reason)."""
    stmt = select(CT.external_id, D.state, D.reason).join(tables.contacts, CT.id == D.contact_id)
    with ctx.engine.connect() as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}
