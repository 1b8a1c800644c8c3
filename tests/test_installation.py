"""Names are per installation (DESIGN 16), and `siyu init` is safe to run concurrently."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from tests.conftest import PG_URL
from tests.support.mockplatform import running_mock_platform
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.channels.memory import HUB
from worker.config import Settings
from worker.dispatch.keys import keys
from worker.dispatch.kick import kick_lane
from worker.dispatch.lane import run_lane
from worker.dispatch.lease import Lease
from worker.rendering.tracking import recipient_token
from worker.store.db import init_db, installation_id, make_engine, tracking_secret


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[str]:
    with running_mock_platform(tmp_path / "mock.db") as url:
        yield url


def test_two_databases_sharing_a_platform_and_a_redis_never_collide(
    redis_url: str, tmp_path: Path, platform: str
) -> None:
    """Staging and production (or a restored backup) with the same account names, contact
    ids and run ids, one platform account and one Redis: each delivers its own messages,
    and a lane of one never holds the other's account."""
    contexts, lanes = [], []
    for name in ("staging", "production"):
        home = tmp_path / name
        home.mkdir()
        ctx = make_context(f"sqlite:///{home / 'siyu.db'}", redis_url, home)
        ids = add_accounts(ctx.engine, ["assistant"], channel="mock", url=platform)
        add_contacts(ctx.engine, 25, channel="mock")
        add_campaign(ctx, "c1", ["assistant"])
        run = start(ctx, "c1")
        materialise(ctx, run.id)  # type: ignore[arg-type]
        contexts.append(ctx)
        lanes.append(ids["assistant"])
    assert lanes[0] == lanes[1], "the same account id in both databases"
    queues = [keys(c).queue for c in contexts]
    assert queues[0] != queues[1]
    before = [contexts[0].redis.llen(q) for q in queues]  # each start() queued its run
    assert before == [1, 1]
    assert kick_lane(contexts[0], lanes[0])
    assert [contexts[0].redis.llen(q) for q in queues] == [2, 1], "tasks go to their own queue"
    contexts[0].redis.delete(keys(contexts[0]).lane_queued(lanes[0]))
    staging_lane = Lease(contexts[0].redis, keys(contexts[0]).lane(lanes[0]), 30_000)
    assert staging_lane.acquire()  # staging is busy with its account
    assert run_lane(contexts[1], lanes[1], slice_s=10).sent == 25
    staging_lane.release()
    assert run_lane(contexts[0], lanes[0], slice_s=10).sent == 25
    stats = httpx.get(f"{platform}/v1/stats").json()["assistant"]
    assert stats["accepted"] == 50, stats
    assert stats["duplicate_attempts"] == 0, stats


def test_every_database_gets_its_own_installation_id_once(tmp_path: Path) -> None:
    first = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    second = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    init_db(first)
    init_db(second)
    made = installation_id(first)
    init_db(first)
    assert installation_id(first) == made and len(made) == 16
    assert installation_id(second) != made


def test_two_inits_at_once_on_a_fresh_postgresql_both_succeed(pg_url: str) -> None:
    """Both race to CREATE TABLE on an empty schema; without a lock one died with
    UniqueViolation. Tried on several fresh schemas, each init in its own thread."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(4):
            schema = f"init_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            errors = _init_concurrently(url, 2)
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            assert errors == [], errors
    finally:
        admin.dispose()
    assert pg_url


def _init_concurrently(url: str, count: int) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    engines = [make_engine(url) for _ in range(count)]

    def init(index: int) -> None:
        try:
            barrier.wait()
            init_db(engines[index])
        except BaseException as exc:  # noqa: BLE001  (the thread hands any error to the test)
            errors.append(exc)

    threads = [threading.Thread(target=init, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = {installation_id(engine) for engine in engines} if not errors else set()
    for engine in engines:
        engine.dispose()
    if not errors and len(ids) != 1:
        errors.append(AssertionError(f"one database, several installation ids: {ids}"))
    return errors


def test_two_inits_at_once_on_a_fresh_sqlite_file_both_succeed(tmp_path: Path) -> None:
    """Two workers started together on a new file: without the write lock up front, one
    failed with 'database is locked' upgrading its read lock to create a table."""
    for attempt in range(4):
        errors = _init_concurrently(f"sqlite:///{tmp_path / f'fresh{attempt}.db'}", 2)
        assert errors == [], errors


def test_each_installation_signs_tracked_links_with_a_secret_of_its_own(
    redis_url: str, tmp_path: Path
) -> None:
    """`siyu init` makes the tracking secret; the same learner in the same campaign gets a
    different token on another installation, and only SIYU_TRACKING_SECRET overrides it."""
    tokens, secrets = [], []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        ctx = make_context(f"sqlite:///{home / 'siyu.db'}", redis_url, home)
        init_db(ctx.engine)  # again: the secret stays
        secret = tracking_secret(ctx.engine)
        assert len(secret) >= 32 and secret != "siyu-tracking"
        ids = add_accounts(ctx.engine, [f"acc-{name}"])
        add_contacts(ctx.engine, 1)
        add_campaign(ctx, "c1", [f"acc-{name}"])
        run = start(ctx, "c1")
        materialise(ctx, run.id)  # type: ignore[arg-type]
        HUB.clear()
        assert run_lane(ctx, ids[f"acc-{name}"], slice_s=10).sent == 1
        [(_, message)] = HUB.by_key.values()
        token = parse_qs(urlsplit(re.findall(r"https://\S+", message.text)[0]).query)["rt"][0]
        assert token == recipient_token(secret, "c1", 1), "signed with the stored secret"
        tokens.append(token)
        secrets.append(secret)
        ctx.engine.dispose()
    assert secrets[0] != secrets[1] and tokens[0] != tokens[1]
    override = SecretStr("kept-from-before")
    assert tracking_secret(make_engine(f"sqlite:///{tmp_path / 'a' / 'siyu.db'}"), override) == (
        "kept-from-before"
    )


def test_init_gives_an_older_installation_a_tracking_secret(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE installation SET tracking_secret = NULL"))
    init_db(engine)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT tracking_secret FROM installation")).scalar()
    engine.dispose()
    assert stored and len(stored) >= 32


def test_secret_settings_never_show_in_a_repr() -> None:
    settings = Settings(
        webhook_secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        api_token="tok-123456789",
        tracking_secret="track-123456789",
    )
    shown = repr(settings)
    for value in ("c2VjcmV0LXNlY3JldC1zZWNyZXQ", "tok-123456789", "track-123456789"):
        assert value not in shown
