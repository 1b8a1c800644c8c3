"""The embedded Redis outlives any one siyu process and never outlives the last one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import kombu
import pytest
import redis

from tests.support.cluster import Workers, wait_for
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
    write_policies,
)
from worker.config import Settings
from worker.errors import ServiceUnavailable
from worker.runtime import celery_broker_url, procs, redis_urls
from worker.runtime.embedded import EmbeddedPaths, EmbeddedRedis, server
from worker.runtime.embedded.locks import FileLock
from worker.runtime.embedded.supervisor import wait_until_unused
from worker.store.db import init_db, make_engine

ROOT = Path(__file__).resolve().parent.parent


def embedded_processes(state: Path) -> list[str]:
    """Live redis-server or supervisor processes of the state dir `state`."""
    marks = (str(state), str(EmbeddedPaths.of(state).socket))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state_code = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        ours = "redis-server" in cmd or server.SUPERVISOR_MODULE in cmd
        if ours and state_code != "Z" and any(mark in cmd for mark in marks):
            found.append(cmd.strip())
    return found


def lock_holders(path: Path) -> set[int]:
    """Pids holding a granted `flock` on `path`, from /proc/locks."""
    inode = f":{os.stat(path).st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields and fields[1] == "FLOCK" and fields[5].endswith(inode):
            holders.add(int(fields[4]))
    return holders


def consumers(emb: EmbeddedRedis) -> int:
    """Celery consumers waiting on the server (one BRPOP connection per worker process)."""
    if not emb.responding():
        return 0
    client = redis.Redis.from_url(emb.url)
    try:
        return sum(1 for c in client.client_list() if c["cmd"] == "brpop")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("unix:///tmp/s/redis.sock", "redis+socket:///tmp/s/redis.sock"),
        ("unix:///tmp/s/redis.sock?db=3", "redis+socket:///tmp/s/redis.sock?virtual_host=3"),
        ("redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/11"),
        ("rediss://h:6380/0", "rediss://h:6380/0"),
        ("redis+socket:///tmp/s/redis.sock", "redis+socket:///tmp/s/redis.sock"),
    ],
)
def test_a_redis_py_url_becomes_the_broker_url_celery_understands(url: str, broker: str) -> None:
    assert celery_broker_url(url) == broker


def test_the_server_outlives_its_first_user_and_stops_after_the_last(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, second = EmbeddedRedis(state), EmbeddedRedis(state)  # two users, like two processes
    first.start()
    second.start()
    client = redis.Redis.from_url(second.url)
    client.set("kept", "yes")
    first.stop()
    assert second.supervised()
    assert client.get("kept") == b"yes"
    client.close()
    second.stop()  # the last user: returns once the supervisor has shut the server down
    assert embedded_processes(state) == []
    assert not second.socket_path.exists()
    assert (state / "redis.rdb").exists(), "the shutdown saved the data"


def test_a_user_killed_with_sigkill_leaves_no_server_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code = (
        "import sys, time\n"
        "from worker.runtime.embedded import EmbeddedRedis\n"
        "EmbeddedRedis(sys.argv[1]).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    user = subprocess.Popen(
        [sys.executable, "-c", code, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "ready"
        assert len(embedded_processes(state)) == 2, "a server and its supervisor"
    finally:
        user.kill()
        user.wait()
    assert wait_for(lambda: not embedded_processes(state), 30, 0.1), embedded_processes(state)
    assert not EmbeddedPaths.of(state).socket.exists()


def test_an_orphan_server_from_an_older_crash_is_replaced_by_a_supervised_one(
    tmp_path: Path,
) -> None:
    paths = EmbeddedPaths.of(tmp_path / "state")
    orphan = server.launch(paths)  # a server nobody supervises, as a crash may leave
    assert wait_for(lambda: server.responding(paths.socket), 20, 0.05)
    emb = EmbeddedRedis(paths.state_dir)
    emb.start()
    try:
        assert orphan.wait(timeout=10) is not None
        assert emb.supervised()
    finally:
        emb.stop()
    assert embedded_processes(paths.state_dir) == []


def test_a_stale_socket_and_pid_files_do_not_stop_a_start(tmp_path: Path) -> None:
    paths = EmbeddedPaths.of(tmp_path / "state")
    paths.state_dir.mkdir()
    paths.socket.write_text("")
    paths.server_pid.write_text("not a pid\n")
    paths.supervisor_pid.write_text(f"{os.getpid()}\n")  # alive, but not a supervisor
    emb = EmbeddedRedis(paths.state_dir)
    emb.start()
    try:
        assert emb.supervised()
    finally:
        emb.stop()
    assert embedded_processes(paths.state_dir) == []


def test_joining_without_launching_is_a_clear_error_when_nothing_runs(tmp_path: Path) -> None:
    emb = EmbeddedRedis(tmp_path / "state")
    with pytest.raises(ServiceUnavailable, match="not running"):
        emb.start(launch=False)
    assert not emb.joined


def test_redis_urls_joins_the_embedded_server_and_gives_celery_its_socket_form(
    tmp_path: Path,
) -> None:
    settings = Settings(redis_url=None, state_dir=tmp_path / "state")
    url, broker = redis_urls(settings)
    emb = EmbeddedRedis(settings.state_dir)
    try:
        assert url == emb.url and broker == celery_broker_url(url)
        with kombu.Connection(broker) as conn:
            queue = conn.SimpleQueue("probe")
            queue.put({"n": 1})
            assert queue.get(timeout=10).payload == {"n": 1}
            queue.close()
    finally:
        from worker.runtime import embedded_redis

        embedded_redis(settings).stop()
    assert embedded_processes(settings.state_dir) == []


def test_the_supervisor_waits_while_a_newcomer_is_half_way_in(tmp_path: Path) -> None:
    paths = EmbeddedPaths.of(tmp_path)
    old_user = FileLock(paths.users_lock)
    old_user.acquire(shared=True)
    got: list[tuple[FileLock, FileLock]] = []
    supervisor = threading.Thread(target=lambda: got.append(wait_until_unused(paths)), daemon=True)
    supervisor.start()
    newcomer_start, newcomer = FileLock(paths.start_lock), FileLock(paths.users_lock)
    assert newcomer_start.acquire(timeout_s=10)
    old_user.release()  # the last user leaves while a newcomer is between its two locks
    assert newcomer.acquire(shared=True, timeout_s=10)
    newcomer_start.release()
    supervisor.join(timeout=0.5)
    assert supervisor.is_alive(), "the newcomer is a user now: the server must stay up"
    newcomer.release()
    supervisor.join(timeout=10)
    assert not supervisor.is_alive() and len(got) == 1
    for lock in got[0]:
        assert lock.held
        lock.release()


def test_a_newcomer_waits_for_a_shutdown_in_progress_then_starts_afresh(tmp_path: Path) -> None:
    paths = EmbeddedPaths.of(tmp_path / "state")
    shutting_start, shutting_users = FileLock(paths.start_lock), FileLock(paths.users_lock)
    assert shutting_start.acquire(timeout_s=0) and shutting_users.acquire(timeout_s=0)
    newcomer = EmbeddedRedis(paths.state_dir)
    joiner = threading.Thread(target=newcomer.start, daemon=True)
    joiner.start()
    joiner.join(timeout=0.5)
    assert joiner.is_alive() and not newcomer.joined, "it waits while the old server stops"
    shutting_users.release()
    shutting_start.release()  # the old supervisor is gone
    joiner.join(timeout=60)
    try:
        assert newcomer.joined and newcomer.supervised()
    finally:
        newcomer.stop()
    assert embedded_processes(paths.state_dir) == []


@pytest.mark.slow
def test_stopping_one_of_two_workers_on_the_embedded_default_leaves_the_other_working(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)  # the embedded default
    state = tmp_path / "state"
    env = {
        "SIYU_DATABASE_URL": sqlite_url,
        "SIYU_STATE_DIR": str(state),
        "SIYU_TEMPLATES_DIR": str(tmp_path / "templates"),
        "SIYU_RATE_LIMITS_DIR": str(write_policies(tmp_path / "rl", {"default": "[account]\n"})),
        "SIYU_LANE_SLICE_S": "10",
        "SIYU_TICK_INTERVAL_S": "1",
    }
    engine = make_engine(sqlite_url)
    init_db(engine)  # as `siyu init` would: two workers creating one SQLite schema at once collide
    engine.dispose()
    observer = EmbeddedRedis(state)  # looks, never joins
    workers = Workers(env, tmp_path)
    try:
        workers.start(1)  # the first starts the server ...
        assert wait_for(lambda: consumers(observer) == 1, 90), workers.logs()
        workers.start(1)  # ... the second finds it running
        assert wait_for(lambda: consumers(observer) == 2, 90), workers.logs()
        first, second = workers.procs
        procs.stop(first)  # SIGTERM, and wait for it to exit
        assert observer.supervised(), workers.logs()
        ctx = make_context(sqlite_url, observer.url, tmp_path)
        add_accounts(ctx.engine, ["m1"])
        add_contacts(ctx.engine, 20)
        add_campaign(ctx, "c1", ["m1"])
        start(ctx, "c1")
        workers.await_completed(ctx, "c1", timeout_s=120)
        assert second.poll() is None
        assert "Traceback" not in workers.logs()
        assert lock_holders(observer.paths.users_lock) == {second.pid}
        ctx.redis.close()
        ctx.engine.dispose()
        os.kill(second.pid, signal.SIGKILL)  # the last user dies without a word
        second.wait(timeout=10)
        assert wait_for(lambda: not embedded_processes(state), 30, 0.1), embedded_processes(state)
        assert not observer.socket_path.exists()
    finally:
        workers.stop()
