"""End to end on the `webhook` channel: real `siyu worker` processes send a campaign to the
local gateway over HTTP; every attempt is counted there, so exactly-once is proven where the
outside world sees it, through a dropped answer, a 503 and a 429 on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import siyu_on
from tests.support.cluster import running_workers, worker_env
from tests.support.gateway import ACCEPT_THEN_DROP, Reply, running_gateway
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
)
from worker.campaigns.status import campaign_status
from worker.webhooks import new_secret

pytestmark = pytest.mark.slow
SECRET = new_secret()


def test_a_campaign_reaches_each_learner_once_through_the_gateway(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    with running_gateway(SECRET) as gw:
        # The first send is stored but its answer lost (settled by the lookup), then a 503
        # (not processed) and a 429 (the account cools down for a second).
        gw.then(ACCEPT_THEN_DROP, Reply(503), Reply(429, headers={"Retry-After": "1"}))
        add_accounts(
            ctx.engine, ["gw1", "gw2"], channel="webhook", url=gw.url, secret=SECRET,
            lookup_url=gw.lookup_url, timeout_s="2",
        )  # fmt: skip
        # Stored before a check `accounts add` now makes: each worker's start-up pauses it.
        add_accounts(ctx.engine, ["gw3"], channel="webhook", url="gw.example/send", secret=SECRET)
        add_contacts(ctx.engine, 30, channel="webhook")
        add_campaign(ctx, "c1", ["gw1", "gw2"])
        env = worker_env(
            ctx, db_url, redis_url, {"webhook": "[account]\n"},
            SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
        )  # fmt: skip
        with running_workers(env, tmp_path, log_level="INFO") as workers:
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 120)
        stored = list(gw.stored.values())
        assert len(gw.lookups) >= 1, "the dropped answer was settled by a lookup"
        assert len(gw.attempts) == 32, "30 messages, the 503 and the 429 tried once more"
        assert gw.bad_signatures == 0
        assert gw.duplicate_attempts == 0, "no idempotency key was accepted twice"
    assert sorted(m["to"] for m in stored) == [f"u{i:06d}" for i in range(1, 31)]
    assert {m["campaign"] for m in stored} == {"c1"}
    assert all("开课啦" in m["text"] for m in stored)
    assert campaign_status(ctx.engine, "c1")["counts"]["sent"] == 30
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        listed = siyu("accounts", "list", "--json")
    accounts = {a["name"]: a for a in json.loads(listed.stdout)}
    assert listed.code == 0 and set(accounts) == {"gw1", "gw2", "gw3"}
    assert (accounts["gw3"]["state"], accounts["gw3"]["state_reason"]) == ("paused", "config")
    assert "account gw3 is now paused (config); account 'gw3': config url must be" in (
        workers.logs(tail=None)
    ), "the worker said at start-up which account it paused and why"
    for where in (workers.logs(tail=None), listed.stdout, listed.stderr):
        assert SECRET not in where and SECRET[len("whsec_") :] not in where
    ctx.engine.dispose()
