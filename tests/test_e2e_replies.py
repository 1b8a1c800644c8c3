"""End to end through real processes: the mock platform delivers a signed inbound message to
`siyu api`, a `siyu worker` decides it, and the answer arrives on the platform from the account
the learner wrote to, once; an opt-out in the middle of a campaign stops that learner's pending
delivery (and a later campaign skips them) while its confirmation still arrives."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.support.cluster import Workers, wait_for, worker_env
from tests.support.mockplatform import duplicate_attempts, free_port, running_mock_platform
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_reply_context,
    start,
)
from worker.campaigns.lifecycle import cancel_campaign
from worker.campaigns.materialise import materialise
from worker.runtime import Context, procs
from worker.store import tables
from worker.webhooks import new_secret

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
CT, D, M = tables.contacts.c, tables.deliveries.c, tables.messages.c
SECRET = new_secret()


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_reply_context(db_url, redis_url, tmp_path)
    yield context
    context.engine.dispose()


@pytest.fixture
def env(ctx: Context, db_url: str, redis_url: str) -> dict[str, str]:
    return worker_env(
        ctx, db_url, redis_url, {"mock": "[account]\nper_minute = 1\n"},
        SIYU_TICK_INTERVAL_S="1",
        SIYU_WEBHOOK_SECRET=SECRET,
        SIYU_REPLY_DELAY_MIN_S="0.5",  # a real wait, kept short
        SIYU_REPLY_DELAY_MAX_S="1",
        PYTHONUNBUFFERED="1",
    )  # fmt: skip


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = procs.spawn(
        [sys.executable, "-m", "worker", "api", "--port", str(port)],
        env=env,
        log=tmp_path / "api.log",
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(ready, 60, 0.2), (tmp_path / "api.log").read_text(errors="replace")
        yield url
    finally:
        procs.stop(proc, timeout_s=20)


def to_learner(platform: str, learner: str) -> list[dict[str, str]]:
    """What the platform accepted for `learner`, in arrival order."""
    got = httpx.get(f"{platform}/v1/messages", params={"to": learner}, timeout=30)
    return list(got.json())


def test_a_question_is_answered_on_the_platform_from_the_account_it_was_asked(
    ctx: Context, env: dict[str, str], api: str, tmp_path: Path
) -> None:
    inbound_url = f"{api}/v1/inbound/mock"
    with running_mock_platform(tmp_path / "p.db", inbound_url=inbound_url, env=env) as platform:
        add_accounts(ctx.engine, ["a1", "a2"], channel="mock", url=platform)
        add_contacts(ctx.engine, 3, channel="mock")
        workers = Workers(env, tmp_path, concurrency=2)
        workers.start()
        try:
            asked = {"account": "a2", "from": "u000003", "text": "早鸟价多少钱？"}
            said = httpx.post(f"{platform}/v1/simulate/inbound", json=asked, timeout=30).json()
            again = {**asked, "message_id": said["message_id"]}  # the platform retries it
            said_again = httpx.post(f"{platform}/v1/simulate/inbound", json=again, timeout=30)
            for outcome in (said, said_again.json()):
                assert (outcome["delivered"], outcome["status"]) == (True, 200), outcome
            assert wait_for(lambda: bool(to_learner(platform, "u000003")), 60), workers.logs()
        finally:
            workers.stop()
        [answer] = to_learner(platform, "u000003")
        assert answer["account"] == "a2" and "699" in answer["text"]
        assert duplicate_attempts(platform) == 0
    with ctx.engine.connect() as conn:
        [(state, key)] = conn.execute(
            select(D.state, D.provider_message_id).where(D.message_id.is_not(None))
        ).all()
    assert (state, key) == ("sent", answer["message_id"])


def test_an_opt_out_by_inbound_message_stops_the_pending_delivery_of_a_running_campaign(
    ctx: Context, env: dict[str, str], api: str, tmp_path: Path
) -> None:
    inbound_url = f"{api}/v1/inbound/mock"
    with running_mock_platform(tmp_path / "p.db", inbound_url=inbound_url, env=env) as platform:
        add_accounts(ctx.engine, ["a1"], channel="mock", url=platform)
        add_contacts(ctx.engine, 6, channel="mock")
        add_campaign(ctx, "c1", ["a1"])
        workers = Workers(env, tmp_path, concurrency=2)
        workers.start()
        try:
            run = start(ctx, "c1")
            said = httpx.post(
                f"{platform}/v1/simulate/inbound",
                json={"account": "a1", "from": "u000006", "text": "退订"},
                timeout=30,
            ).json()
            assert (said["delivered"], said["status"]) == (True, 200), said

            def decided() -> bool:
                with ctx.engine.connect() as conn:
                    return (
                        conn.execute(select(M.action).where(M.inbound.is_(True))).scalar()
                        is not None
                    )

            assert wait_for(decided, 60), workers.logs()
            with ctx.engine.connect() as conn:
                row = conn.execute(
                    select(D.state, D.reason)
                    .join(tables.contacts, CT.id == D.contact_id)
                    .where(CT.external_id == "u000006", D.run_id == run.id)
                ).one()
            assert tuple(row) == ("skipped", "opted_out"), "one a minute: still pending then"
            cancel_campaign(ctx, "c1")
            # The confirmation goes first once the account may send again (one a minute).
            assert wait_for(lambda: bool(to_learner(platform, "u000006")), 90), workers.logs()
        finally:
            workers.stop()
        [confirmation] = to_learner(platform, "u000006")
        assert "退订" in confirmation["text"] and confirmation["account"] == "a1"
        assert duplicate_attempts(platform) == 0
    add_campaign(ctx, "c2", ["a1"])
    assert run.id is not None
    materialise(ctx, start(ctx, "c2").id)  # type: ignore[arg-type]
    with ctx.engine.connect() as conn:
        later = conn.execute(
            select(D.state, D.reason)
            .join(tables.contacts, CT.id == D.contact_id)
            .where(CT.external_id == "u000006", D.run_id != run.id)
        ).one()
    assert tuple(later) == ("skipped", "opted_out")
