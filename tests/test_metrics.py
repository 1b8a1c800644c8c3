"""Prometheus metrics (issue 11, item 3): the database gauges agree with `campaigns status`,
whoever serves them (`siyu api` at /metrics, each worker on `--metrics-port`)."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, event, insert, select, update

from tests.support.cluster import running_workers, wait_for, worker_env
from tests.support.mockplatform import free_port, running_mock_platform
from tests.support.rows import drain
from tests.support.serving import serving
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.api.app import create_app
from worker.campaigns.materialise import materialise
from worker.campaigns.status import campaign_status
from worker.channels.memory import HUB
from worker.config import Settings
from worker.observability.metrics import api_registry, worker_registry
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context
from worker.services.accounts import set_paused
from worker.store import tables
from worker.store.models import utcnow

D = tables.deliveries.c
M = tables.messages.c
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TOKEN = "metrics-token-0123456789"
REPO = Path(__file__).resolve().parent.parent


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, labels); parsing fails on a malformed exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_labels(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """`name`'s samples keyed by the values of `keys` (summed over the other labels)."""
    out: dict[tuple[str, ...], float] = {}
    for (sample, labels), value in samples.items():
        if sample == name:
            key = tuple(dict(labels)[k] for k in keys)
            out[key] = out.get(key, 0.0) + value
    return out


def assert_matches_status(samples: Samples, doc: dict[str, Any]) -> None:
    """The scrape's deliveries, per state and per account, are the status document's."""
    by_state = by_labels(samples, "siyu_deliveries", "state")
    reported = {s: by_state.get((s,), 0.0) for s in ("sent", "failed", "skipped", "unknown")}
    reported["pending"] = sum(by_state.get((s,), 0.0) for s in ("pending", "claimed", "sending"))
    assert reported == {k: float(v) for k, v in doc["counts"].items()}
    per_account = by_labels(samples, "siyu_deliveries", "account", "state")
    states = by_labels(samples, "siyu_account_state", "account", "state")
    for name, entry in doc["accounts"].items():
        assert per_account[(name, "sent")] == entry["sent"], name
        open_rows = sum(per_account[(name, s)] for s in ("pending", "claimed", "sending"))
        assert open_rows == entry["pending"], name
        assert states[(name, entry["state"])] == 1.0, name
        assert sum(v for (a, _), v in states.items() if a == name) == 1.0, "one-hot"


# --- the database gauges, in-process ---------------------------------------------------------


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    HUB.clear()
    context = make_context(db_url, redis_url, tmp_path, claim_batch=50)
    yield context
    context.engine.dispose()


def half_sent_campaign(ctx: Context) -> dict[str, int]:
    """c1 over a1 and a2: a1's share sent, a2's pending (two of them settled otherwise),
    one member no account can reach; a2 paused, a2's oldest pending row an hour old."""
    accounts = add_accounts(ctx.engine, ["a1", "a2"])
    add_contacts(ctx.engine, 40)
    add_contacts(ctx.engine, 1, start=41, channel="mock")  # skipped: no reachable account
    add_campaign(ctx, "c1", ["a1", "a2"])
    run = start(ctx, "c1")
    materialise(ctx, run.id)  # type: ignore[arg-type]
    drain(ctx, [accounts["a1"]])
    a2_rows = select(D.id).where(D.account_id == accounts["a2"]).order_by(D.id)
    with ctx.engine.begin() as conn:
        ids = list(conn.execute(a2_rows).scalars())
        assert len(ids) > 4, "a2 has a share to leave pending"
        conn.execute(update(tables.deliveries).where(D.id == ids[0]).values(state="failed"))
        conn.execute(update(tables.deliveries).where(D.id == ids[1]).values(state="unknown"))
        old = utcnow() - timedelta(hours=1)
        conn.execute(update(tables.deliveries).where(D.id == ids[2]).values(created_at=old))
    set_paused(ctx.engine, "a2", True)
    return accounts


def scrape_registry(engine: Engine) -> Samples:
    return parse(generate_latest(api_registry(engine)).decode())


def test_the_database_gauges_match_campaigns_status(ctx: Context) -> None:
    half_sent_campaign(ctx)
    samples = scrape_registry(ctx.engine)
    doc = campaign_status(ctx.engine, "c1")
    assert doc["counts"]["sent"] > 0 and doc["counts"]["pending"] > 0
    assert doc["counts"]["failed"] == doc["counts"]["unknown"] == doc["counts"]["skipped"] == 1
    assert_matches_status(samples, doc)
    unowned = by_labels(samples, "siyu_deliveries", "account", "channel", "state")
    assert unowned[("", "", "skipped")] == 1.0, "no account took it: empty labels"
    assert by_labels(samples, "siyu_deliveries", "channel")[("memory",)] == 40.0
    assert samples[("siyu_database_up", frozenset())] == 1.0


def test_lane_lag_is_the_age_of_each_accounts_oldest_pending_delivery(ctx: Context) -> None:
    half_sent_campaign(ctx)
    lag = by_labels(scrape_registry(ctx.engine), "siyu_lane_lag_seconds", "account")
    assert lag[("a1",)] == 0.0, "nothing pending"
    assert 3600 <= lag[("a2",)] < 3600 + 600


def test_a_waiting_reply_counts_in_its_accounts_lane_lag(ctx: Context) -> None:
    """Replies (deliveries with no run) wait in the same lane as campaign sends."""
    accounts = half_sent_campaign(ctx)
    two_hours_ago = utcnow() - timedelta(hours=2)
    with ctx.engine.begin() as conn:
        contact = conn.execute(select(tables.contacts.c.id).limit(1)).scalar_one()
        conn.execute(
            insert(tables.deliveries).values(
                contact_id=contact, account_id=accounts["a1"], state="pending", attempts=0,
                created_at=two_hours_ago, updated_at=two_hours_ago,
            )
        )  # fmt: skip
    lag = by_labels(scrape_registry(ctx.engine), "siyu_lane_lag_seconds", "account")
    assert 7200 <= lag[("a1",)] < 7200 + 600
    assert 3600 <= lag[("a2",)] < 3600 + 600


def test_inbound_decisions_are_counted_by_action(ctx: Context) -> None:
    add_accounts(ctx.engine, ["m1"], channel="mock", url="http://127.0.0.1:9")
    for i in range(5):
        payload = {"message_id": f"p{i}", "account": "m1", "from": f"u{i}", "text": "hi"}
        record_inbound(ctx.engine, "mock", InboundPayload.model_validate(payload))
    actions = ["reply", "reply", "handoff", "opt_out"]  # the fifth stays undecided
    with ctx.engine.begin() as conn:
        ids = list(conn.execute(select(M.id).where(M.inbound).order_by(M.id)).scalars())
        for message_id, action in zip(ids, actions, strict=False):
            conn.execute(
                update(tables.messages)
                .where(M.id == message_id)
                .values(action=action, decided_at=utcnow())
            )
    samples = scrape_registry(ctx.engine)
    decisions = by_labels(samples, "siyu_inbound_decisions", "action")
    assert decisions == {("reply",): 2.0, ("handoff",): 1.0, ("opt_out",): 1.0}
    assert samples[("siyu_inbound_undecided", frozenset())] == 1.0


def test_a_database_that_cannot_be_read_is_reported_not_raised(tmp_path: Path) -> None:
    missing = create_engine(f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
    samples = scrape_registry(missing)
    assert samples[("siyu_database_up", frozenset())] == 0.0
    assert not by_labels(samples, "siyu_deliveries", "state")


def test_a_workers_registry_has_the_limiter_waits_and_optionally_the_database(
    ctx: Context,
) -> None:
    with_db = generate_latest(worker_registry(ctx.engine)).decode()
    without = generate_latest(worker_registry(ctx.engine, database=False)).decode()
    assert "# HELP siyu_limiter_wait_seconds" in with_db and "siyu_deliveries" in with_db
    assert "# HELP siyu_limiter_wait_seconds" in without and "siyu_deliveries" not in without


# --- /metrics of `siyu api` ------------------------------------------------------------------


def get_metrics(app: FastAPI, client: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET /metrics from `app` as a client at address `client` (in-process ASGI)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://siyu") as http:
            return await http.get("/metrics", headers=headers)

    return anyio.run(get)


def test_the_api_serves_metrics_to_loopback_without_a_token(ctx: Context) -> None:
    half_sent_campaign(ctx)
    apps = [create_app(Settings(), ctx.engine) for _ in range(2)]  # no global registry
    with serving(apps[1]) as url:
        response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert_matches_status(parse(response.text), campaign_status(ctx.engine, "c1"))


def test_the_api_refuses_metrics_to_another_host_without_a_token(ctx: Context) -> None:
    response = get_metrics(create_app(Settings(), ctx.engine), "203.0.113.9")
    assert response.status_code == 403 and "SIYU_API_TOKEN" in response.json()["error"]


def test_with_a_token_metrics_need_it_from_anywhere(ctx: Context) -> None:
    app = create_app(Settings(api_token=TOKEN), ctx.engine)
    assert get_metrics(app, "127.0.0.1").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert get_metrics(app, "127.0.0.1", wrong).status_code == 401
    response = get_metrics(app, "203.0.113.9", {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "siyu_account_state" in response.text


# --- real workers ----------------------------------------------------------------------------

PACED = "[account]\nper_second = 20\n"  # the lanes wait for their slots: waits to observe


@pytest.mark.slow
def test_a_scrape_of_each_worker_after_a_small_campaign_matches_campaigns_status(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    ports = [free_port(), free_port()]
    with running_mock_platform(tmp_path / "mock.db") as url:
        add_accounts(ctx.engine, ["acct1", "acct2"], channel="mock", url=url, timeout_s="2")
        add_contacts(ctx.engine, 60, channel="mock")
        add_contacts(ctx.engine, 5, channel="mock", tags=("java",), start=61)  # outsiders
        add_campaign(ctx, "c1", ["acct1", "acct2"])
        env = worker_env(
            ctx, db_url, redis_url, {"mock": PACED},
            SIYU_TICK_INTERVAL_S="1", SIYU_LOG_FORMAT="json",
        )  # fmt: skip
        extra = lambda n: ["--metrics-port", str(ports[n - 1])]  # noqa: E731
        with running_workers(env, tmp_path, count=2, extra_args=extra) as workers:
            assert wait_for(lambda: all(_up(p) for p in ports), 60), workers.logs()
            start(ctx, "c1")
            workers.await_completed(ctx, "c1", 180)
            scrapes = [parse(httpx.get(_url(p), timeout=30).text) for p in ports]
    doc = campaign_status(ctx.engine, "c1")
    assert doc["counts"]["sent"] == 60 and doc["total"] == 60
    for samples in scrapes:
        assert_matches_status(samples, doc)
    deliveries = [by_labels(s, "siyu_deliveries", "state", "account", "channel") for s in scrapes]
    assert deliveries[0] == deliveries[1], "every process reports the database's numbers"
    waits = [by_labels(s, "siyu_limiter_wait_seconds_count", "account") for s in scrapes]
    observed = {key: sum(w.get(key, 0.0) for w in waits) for key in itertools.chain(*waits)}
    assert observed and set(observed) <= {("acct1",), ("acct2",)}
    assert sum(observed.values()) > 0, "paced lanes waited for their slots"


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def _up(port: int) -> bool:
    try:
        return httpx.get(_url(port), timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_gauges_never_count_deliveries_row_by_row(ctx: Context) -> None:
    """Counts come from the tallies (`store.tallies`); deliveries are read once, for each
    account's oldest pending row, by index probes with LIMIT 1 (never a GROUP BY over the
    table, whose cost would grow with every delivery ever made)."""
    half_sent_campaign(ctx)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(ctx.engine, "before_cursor_execute", seen)
    try:
        scrape_registry(ctx.engine)
    finally:
        event.remove(ctx.engine, "before_cursor_execute", seen)
    on_deliveries = [s for s in statements if "FROM deliveries" in s]
    assert len(on_deliveries) == 1, statements  # the oldest pending of every account
    assert "GROUP BY" not in on_deliveries[0] and "LIMIT" in on_deliveries[0]
    assert any("FROM delivery_counts" in s for s in statements), statements


@pytest.mark.slow
def test_a_metrics_port_in_use_is_refused_at_start_up_with_one_line(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(sqlite_url, redis_url, tmp_path)
    env = worker_env(ctx, sqlite_url, redis_url, {"memory": "[account]\n"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [sys.executable, "-m", "worker", "worker", "--metrics-port", str(port)]
        env = {**os.environ, **env}
        done = subprocess.run(
            args, check=False, env=env, capture_output=True, text=True, timeout=120, cwd=REPO
        )
    assert done.returncode == 2, done
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: --metrics-port: cannot listen on 127.0.0.1:{port}")
    ), done.stderr
    assert "Traceback" not in done.stderr
