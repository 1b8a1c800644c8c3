"""An operator can't misuse it: worker heartbeats, warnings without a worker, `siyu doctor`.

The CLI runs in-process through the real `siyu` entry point against a fresh SQLite database
and the test Redis; the one slow test starts a real `siyu worker`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.cli import Outcome, Siyu, run_siyu
from tests.support.cluster import Workers, wait_for
from tests.support.mockplatform import free_port, running_mock_platform
from tests.support.schema import as_made_before_migrations
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context
from worker.config import get_settings
from worker.dispatch.heartbeat import Heartbeat, live_workers
from worker.dispatch.keys import keys
from worker.runtime import Context, set_context
from worker.store import migrate
from worker.store.db import reset_engines

WARNING = "warning: no worker is running: start one with `siyu worker`"
GOOD_POLICY = "[account]\nper_minute = 20\nmin_gap_s = 1.0\nmax_gap_s = 2.0\n"


def lines_of(outcome: Outcome, check: str) -> list[str]:
    """The output lines of one check (`ok       redis  ...`)."""
    return [ln for ln in outcome.stdout.splitlines() if ln.split()[1:2] == [check]]


@pytest.fixture
def home(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh installation's configuration: database, Redis, valid policies and templates."""
    policies = tmp_path / "rate_limits"
    policies.mkdir()
    (policies / "default.toml").write_text(GOOD_POLICY, encoding="utf-8")
    (policies / "mock.toml").write_text("[account]\nper_second = 5\n", encoding="utf-8")
    templates = tmp_path / "templates"
    (templates / "replies").mkdir(parents=True)
    (templates / "replies" / "persona.j2").write_text("你是{{ account }}的助教。", "utf-8")
    env = {
        "SIYU_DATABASE_URL": f"sqlite:///{tmp_path / 'siyu.db'}",
        "SIYU_REDIS_URL": redis_url,
        "SIYU_RATE_LIMITS_DIR": str(policies),
        "SIYU_TEMPLATES_DIR": str(templates),
        "SIYU_STATE_DIR": str(tmp_path / ".siyu"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _forget_process_state()
    yield tmp_path
    _forget_process_state()


def _forget_process_state() -> None:
    get_settings.cache_clear()
    reset_engines()
    set_context(None)


@pytest.fixture
def siyu(home: Path, capsys: pytest.CaptureFixture[str]) -> Siyu:
    """`siyu(*args)` runs the console script in-process; its exit code, stdout and stderr."""

    return lambda *args: run_siyu(capsys, *args)


@pytest.fixture
def ctx(home: Path, siyu: Siyu) -> Context:
    """The installation `siyu init` made, seen from a test: one draft campaign `c1`."""
    assert siyu("init").code == 0
    settings = get_settings()
    made = make_context(settings.database_url, str(settings.redis_url), home)
    add_accounts(made.engine, ["a1"])
    add_contacts(made.engine, 3)
    add_campaign(made, "c1", ["a1"])
    return made


def heartbeat_json(pid: int) -> str:
    info = {"host": "h", "pid": pid, "started_at": "2026-12-01T00:00:00+00:00", "concurrency": 4}
    return json.dumps({"id": f"w{pid}", **info})


# -- the heartbeat ----------------------------------------------------------------------------


def test_live_workers_are_the_heartbeats_that_have_not_expired(ctx: Context) -> None:
    names = keys(ctx)
    ctx.redis.set(names.worker("w1"), heartbeat_json(1), px=60_000)
    ctx.redis.set(names.worker("w2"), heartbeat_json(2), px=50)
    ctx.redis.sadd(names.workers, "w1", "w2", "w3")  # w3 crashed long ago: no key at all
    time.sleep(0.2)
    found = live_workers(ctx)
    assert [(w.id, w.pid, w.host, w.concurrency) for w in found] == [("w1", 1, "h", 4)]
    assert ctx.redis.smembers(names.workers) == {b"w1"}, "expired ids are dropped"


def test_a_heartbeat_is_listed_while_it_beats_and_gone_once_stopped(ctx: Context) -> None:
    beat = Heartbeat(ctx, concurrency=3)
    beat.start()
    try:
        [found] = live_workers(ctx)
        assert (found.pid, found.concurrency) == (os.getpid(), 3)
        ttl_ms = ctx.redis.pttl(keys(ctx).worker(found.id))
        assert 0 < ttl_ms <= ctx.settings.tick_interval_s * 5 * 1000
    finally:
        beat.stop()
    assert live_workers(ctx) == []


def test_another_installations_worker_does_not_count(ctx: Context, tmp_path: Path) -> None:
    other_home = tmp_path / "other"
    other_home.mkdir()
    settings = ctx.settings
    other = make_context(f"sqlite:///{other_home / 'siyu.db'}", str(settings.redis_url), other_home)
    Heartbeat(other, concurrency=1).beat()
    assert live_workers(ctx) == []
    assert len(live_workers(other)) == 1


@pytest.mark.slow
def test_a_real_worker_has_a_heartbeat_until_it_stops(ctx: Context, home: Path) -> None:
    settings = get_settings()
    env = {
        "SIYU_DATABASE_URL": settings.database_url,
        "SIYU_REDIS_URL": str(settings.redis_url),
        "SIYU_RATE_LIMITS_DIR": str(settings.rate_limits_dir),
        "SIYU_TEMPLATES_DIR": str(settings.templates_dir),
        "SIYU_STATE_DIR": str(settings.state_dir),
        # A long TTL (5 intervals): the heartbeat must go on stop, not by expiring.
        "SIYU_TICK_INTERVAL_S": "10",
    }
    workers = Workers(env, home, concurrency=2)
    workers.start()
    try:
        assert wait_for(lambda: bool(live_workers(ctx)), 60), workers.logs()
        [found] = live_workers(ctx)
        assert (found.pid, found.concurrency) == (workers.procs[0].pid, 2)
    finally:
        workers.stop()
    assert workers.procs[0].returncode is not None
    assert live_workers(ctx) == [], workers.logs()


# -- warnings without a worker ------------------------------------------------------------------


def test_start_and_status_warn_on_stderr_when_no_worker_is_running(
    ctx: Context, siyu: Siyu
) -> None:
    started = siyu("campaigns", "start", "c1")
    assert started.code == 0, started
    assert WARNING in started.stderr
    assert "warning" not in started.stdout
    status = siyu("campaigns", "status", "c1", "--json")
    assert status.code == 0, status
    assert json.loads(status.stdout)["status"] == "running", "stdout is one JSON document"
    assert WARNING in status.stderr


def test_status_of_a_draft_does_not_warn(ctx: Context, siyu: Siyu) -> None:
    status = siyu("campaigns", "status", "c1")
    assert status.code == 0 and status.stderr == "", status


def test_no_warning_while_a_worker_has_a_heartbeat(ctx: Context, siyu: Siyu) -> None:
    beat = Heartbeat(ctx, concurrency=2)
    beat.beat()
    try:
        started = siyu("campaigns", "start", "c1")
        status = siyu("campaigns", "status", "c1")
    finally:
        beat.stop()
    assert started.code == 0 and status.code == 0, (started, status)
    assert "warning" not in started.stderr + status.stderr


# -- siyu doctor ----------------------------------------------------------------------------------


@pytest.fixture
def healthy(ctx: Context, home: Path) -> Iterator[Context]:
    """A worker heartbeat present and a mock account whose platform answers."""
    Heartbeat(ctx, concurrency=4).beat()
    with running_mock_platform(home / "mock.db") as url:
        add_accounts(ctx.engine, ["m1"], channel="mock", url=url)
        ctx.extras["mock_url"] = url
        yield ctx


def test_doctor_finds_a_fresh_installation_with_a_worker_healthy(
    healthy: Context, siyu: Siyu
) -> None:
    result = siyu("doctor")
    assert result.code == 0, result
    checks = ["database", "redis", "workers", "policies", "templates", "webhooks", "accounts"]
    checks.append("mock-platform")
    for check in checks:
        [line] = lines_of(result, check)
        assert line.startswith("ok "), line
    assert "default, mock" in lines_of(result, "policies")[0]
    report = siyu("doctor", "--json")
    document = json.loads(report.stdout)
    assert report.code == 0 and document["ok"] is True
    assert [c["check"] for c in document["checks"]] == checks


def problems(result: Outcome, check: str) -> list[str]:
    """The check's problem lines (at least one, each with its fix); a non-zero exit."""
    assert result.code != 0, result
    lines = [line for line in lines_of(result, check) if line.startswith("PROBLEM ")]
    assert lines and all("; fix: " in line for line in lines), result.stdout
    return lines


def test_doctor_reports_a_malformed_webhook_secret_with_how_to_make_one(
    healthy: Context, siyu: Siyu, monkeypatch: pytest.MonkeyPatch
) -> None:
    [line] = lines_of(siyu("doctor"), "webhooks")
    assert line.startswith("ok ") and "inbound webhooks refused" in line
    monkeypatch.setenv("SIYU_WEBHOOK_SECRET", "hunter2")
    get_settings.cache_clear()
    [line] = problems(siyu("doctor"), "webhooks")
    assert "must start with 'whsec_'" in line and "python -m worker.webhooks" in line


def test_doctor_reports_that_no_worker_is_running(ctx: Context, siyu: Siyu) -> None:
    [line] = problems(siyu("doctor"), "workers")
    assert "no worker is running; fix: start one with `siyu worker`" in line


def test_doctor_reports_every_malformed_policy_file(healthy: Context, siyu: Siyu) -> None:
    folder = get_settings().rate_limits_dir
    (folder / "bad.toml").write_text("[account]\nper_minute = 'twenty'\n", encoding="utf-8")
    (folder / "worse.toml").write_text("[acount]\n", encoding="utf-8")
    lines = problems(siyu("doctor"), "policies")
    assert len(lines) == 2, lines
    assert "bad.toml" in lines[0] and "per_minute" in lines[0]
    assert "worse.toml" in lines[1] and "fix: correct worse.toml" in lines[1]


def test_doctor_reports_an_account_naming_a_policy_nobody_wrote(
    healthy: Context, siyu: Siyu
) -> None:
    with healthy.engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET policy = 'vip' WHERE name = 'a1'"))
    [line] = problems(siyu("doctor"), "accounts")
    assert "account a1" in line and "'vip'" in line and "write vip.toml" in line


def test_doctor_reports_an_account_whose_channel_config_cannot_be_used_here(
    healthy: Context, siyu: Siyu
) -> None:
    # `accounts add` refuses these; they went bad since (an upgrade, a plugin uninstalled).
    add_accounts(healthy.engine, ["tg"], channel="telegram", token="not-a-token")
    add_accounts(healthy.engine, ["gone"], channel="acme-sms")
    lines = problems(siyu("doctor"), "accounts")
    assert len(lines) == 2, lines
    assert "account gone (active)" in lines[0] and "unknown channel 'acme-sms'" in lines[0]
    assert "account tg (active)" in lines[1] and "not a bot token" in lines[1]
    assert "not-a-token" not in lines[1], "a config value is never echoed"
    assert "install the channel's package here" in lines[1]


def test_doctor_reports_a_template_that_does_not_compile(healthy: Context, siyu: Siyu) -> None:
    folder = Path(get_settings().templates_dir)
    (folder / "broken.j2").write_text("你好\n{% if contact.name %}\n没有结束", encoding="utf-8")
    [line] = problems(siyu("doctor"), "templates")
    assert "templates/broken.j2 line 3" in line, line


def test_doctor_reports_an_unreachable_redis(
    healthy: Context, siyu: Siyu, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_REDIS_URL", f"redis://:secret@127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    result = siyu("doctor")
    [line] = problems(result, "redis")
    assert "cannot reach Redis" in line and "correct SIYU_REDIS_URL" in line
    assert "secret" not in result.stdout
    assert problems(result, "workers")


def test_doctor_does_not_start_the_embedded_redis(
    healthy: Context, siyu: Siyu, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIYU_REDIS_URL")
    get_settings.cache_clear()
    [line] = problems(siyu("doctor"), "redis")
    assert "is not running" in line and "siyu worker" in line
    assert not get_settings().state_dir.exists(), "nothing was started"


def older_siyu_made(*statements: str) -> None:
    """Turn the database into one an older siyu made: no migrations yet, and `statements`."""
    raw = create_engine(get_settings().database_url)
    with raw.begin() as conn:
        as_made_before_migrations(conn, *statements)
    raw.dispose()


def test_doctor_reports_a_database_behind_the_code_until_init(healthy: Context, siyu: Siyu) -> None:
    older_siyu_made("DROP TABLE suppressions", "ALTER TABLE accounts DROP COLUMN state_reason")
    [line] = problems(siyu("doctor"), "database")
    assert f"schema made before migrations, this siyu needs revision {migrate.head()}" in line
    missing = line.split("missing tables: ", 1)[1].split(";", 1)[0].split(", ")
    assert {"suppressions", "campaign_firings", "delivery_counts"} <= set(missing)
    assert "missing columns: accounts.state_reason" in line and "run `siyu init`" in line
    assert siyu("init").code == 0
    [ok] = lines_of(siyu("doctor"), "database")
    assert ok.startswith("ok ") and f"revision {migrate.head()}" in ok


def test_doctor_says_init_cannot_add_a_missing_not_null_column(
    healthy: Context, siyu: Siyu
) -> None:
    older_siyu_made("ALTER TABLE contacts DROP COLUMN name")
    [line] = problems(siyu("doctor"), "database")
    assert "missing columns: contacts.name" in line
    assert "fix: `siyu init` cannot add NOT NULL columns (contacts.name)" in line


def test_doctor_reports_a_database_a_newer_siyu_migrated(healthy: Context, siyu: Siyu) -> None:
    raw = create_engine(get_settings().database_url)
    with raw.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    raw.dispose()
    [line] = problems(siyu("doctor"), "database")
    assert "schema revision f00d is newer than this siyu" in line
    assert "fix: run the siyu version that migrated it" in line
    result = siyu("init")
    assert result.code != 0 and "newer siyu migrated it" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_a_schema_changed_by_hand_at_the_current_revision(
    healthy: Context, siyu: Siyu
) -> None:
    raw = create_engine(get_settings().database_url)
    with raw.begin() as conn:
        conn.execute(text("ALTER TABLE accounts DROP COLUMN state_reason"))
    raw.dispose()
    [line] = problems(siyu("doctor"), "database")
    assert "missing columns: accounts.state_reason" in line and "changed by hand" in line


def test_doctor_reports_a_mock_account_whose_platform_does_not_answer(
    healthy: Context, siyu: Siyu
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    add_accounts(healthy.engine, ["m2"], channel="mock", url=url)
    add_accounts(healthy.engine, ["m3"], channel="mock", url=f"{healthy.extras['mock_url']}/x")
    result = siyu("doctor")
    lines = problems(result, "mock-platform")
    [down] = [line for line in lines if "account m2" in line]
    assert f"{url} (account m2) does not answer" in down and "siyu mock-platform" in down
    [wrong] = [line for line in lines if "account m3" in line]
    assert "/x/v1/stats (account m3) answered 404" in wrong
    assert len(lines_of(result, "mock-platform")) == 3, "the running platform is still ok"


def test_doctor_before_init_creates_no_database(home: Path, siyu: Siyu) -> None:
    result = siyu("doctor")
    [line] = problems(result, "database")
    assert "no database file" in line and "fix: run `siyu init`" in line
    assert problems(result, "workers")
    assert not (home / "siyu.db").exists()
