"""Campaign throughput: siyu's account lanes against one Celery task per message.

    .venv/bin/python bench/throughput.py [--contacts 100000] [--workers 2] [--concurrency 4]
        [--accounts 4] [--pool threads] [--skip-baseline] [--skip-million] [--lanes-only]
        [--observed | --compare-observed N] [--timeout-min 40]

Each phase gets a freshly created PostgreSQL database (`siyu_bench`), an empty Redis db 12,
N contacts COPY-loaded (not timed), `memory` accounts with no limits, a segment matching
everyone and one campaign; then W real worker processes of C threads are started and must be
consuming before the clock starts.

* siyu: `python -m worker worker`; the clock runs from `start_campaign` (materialisation
  included) until the run's status is `completed`, polled every 0.2 s. `--lanes-only`
  materialises before the clock instead (a diagnostic of the lanes alone).
* baseline (`bench/_naive.py`): `celery -A bench._naive worker`, same W, C and pool shape;
  deliveries are materialised in-process first (not timed); the clock runs from the first
  `send.delay(delivery_id)` until no row is pending.
* siyu again with 1,000,000 contacts, to show whether worker memory follows the audience.

`--observed` runs siyu with observability on (`bench/_observe.py`: each worker serves
metrics and logs JSON; a process of its own scrapes them and the database gauges every
`--scrape-s`); `--compare-observed N` runs only the siyu
phase, N times without and N times with it, alternating, and compares the median rates.

Every phase fails loudly unless every delivery ends `sent` with a message id. Every 0.2 s the
RSS of each worker (with its children) is sampled; `peak_rss_mb` is the largest single
worker's peak. CPU seconds of the workers and of their PostgreSQL backends inside the timed
window are reported per delivery: on a shared machine they are steadier than the rate. The
`memory` accounts keep only their last 20,000 messages (`max_keys`), so RSS shows the
engine rather than the test channel's store. Prints a table, then one JSON
object as the last line. Processes, the database and Redis db 12 are cleaned up on exit,
Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script (`make bench`): make `bench._naive` importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import Engine, create_engine, func, insert, select, text  # noqa: E402

from bench._harness import (  # noqa: E402
    BENCH_APP,
    PG,
    BenchError,
    admin_sql,
    consumers,
    guarded,
    progress,
)
from bench._observe import (  # noqa: E402
    JSON_LOGS,
    SCRAPE_S,
    ScraperProcess,
    comparison,
    free_ports,
    metrics_args,
)
from worker.campaigns.lifecycle import CampaignSpec, create_campaign, start_campaign  # noqa: E402
from worker.campaigns.materialise import materialise  # noqa: E402
from worker.campaigns.tick import tick  # noqa: E402
from worker.config import Settings  # noqa: E402
from worker.runtime import Context, configure_celery, procs  # noqa: E402
from worker.store.db import init_db, make_engine  # noqa: E402
from worker.store.models import Account, CampaignRun, Delivery, Segment, utcnow  # noqa: E402

DB_NAME = "siyu_bench"
DB_URL = f"{PG}/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/12"
POLL_S = 0.2
PROGRESS_PER_ROW_S = 5.0 / 100_000  # a progress count of N rows every N/20,000 s (min 5 s)
MILLION = 1_000_000
CAMPAIGN = "bench"
TEMPLATE = (
    "{{ contact.name or '同学' }}您好，我是思语学堂助教小林\n《{{ course_name }}》新一期开课啦！\n"
    "{% if contact.attrs.get('city') %}{{ contact.attrs.city }}已经有不少同学报名了～\n{% endif %}"
    "课程介绍和试听：{{ track(course_url) }}\n入群领课件、一起打卡：{{ group_url }}\n"
    '回复"退订"不再接收'
)
VARS = {
    "course_name": "Python 数据分析入门",
    "course_url": "https://edu.example.com/c/py-data",
    "group_url": "https://work.weixin.qq.com/gm/3f9a2c1d",
}
# The memory channel keeps only this many recent keys, so RSS shows the engine, not the hub.
HUB_KEYS = 20_000
NO_LIMITS = "# memory accounts: no account limits, no recipient caps\n[account]\n"
D = Delivery.__table__.c  # type: ignore[attr-defined]
R = CampaignRun.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Options:
    contacts: int
    workers: int
    concurrency: int
    accounts: int
    pool: str
    lanes_only: bool
    baseline: bool
    million: bool
    timeout_s: float
    observed: bool = False
    compare_rounds: int = 0
    scrape_s: float = SCRAPE_S


@dataclass
class Usage:
    """What the workers used: peak RSS, and CPU seconds inside the timed window."""

    peak_rss_mb: float = 0.0  # the largest single worker, with its children
    total_rss_mb: float = 0.0  # all workers together
    worker_cpu_s: float = 0.0
    db_cpu_s: float = 0.0  # the PostgreSQL backends serving the benchmark database


@dataclass
class Phase:
    label: str
    contacts: int
    seconds: float
    usage: Usage
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.contacts / self.seconds


class Deadline:
    """One time budget for the whole benchmark."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self.ends = time.monotonic() + total_s

    def check(self, doing: str) -> None:
        if time.monotonic() > self.ends:
            raise BenchError(f"gave up after {self.total_s / 60:.0f} min while {doing}")


# -- database ------------------------------------------------------------------------------


def recreate_database() -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def load_contacts(engine: Engine, count: int) -> None:
    """COPY `count` contacts, every one tagged `python`, half of them with a city."""
    now = utcnow().isoformat(sep=" ")
    sql = (
        "COPY contacts (channel, external_id, name, tags, attrs, created_at, updated_at) FROM STDIN"
    )
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for start in range(1, count + 1, 10_000):
                copy.write(_contact_lines(start, min(start + 10_000, count + 1), now))
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE contacts"))


def _contact_lines(start: int, stop: int, now: str) -> str:
    city = ('{"city": "上海"}', "{}")
    return "".join(
        f'memory\tu{i:07d}\t学员{i}\t["python"]\t{city[i % 2]}\t{now}\t{now}\n'
        for i in range(start, stop)
    )


def build_world(ctx: Context, contacts: int, accounts: int) -> None:
    load_contacts(ctx.engine, contacts)
    names = [f"bench_{i:02d}" for i in range(1, accounts + 1)]
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(Account),
            [{"name": n, "channel": "memory", "config": {"max_keys": HUB_KEYS}} for n in names],
        )
        conn.execute(insert(Segment), [{"name": CAMPAIGN, "expression": "tag = python"}])
    spec = CampaignSpec(CAMPAIGN, CAMPAIGN, "invite", names, variables=dict(VARS))
    create_campaign(ctx.engine, ctx.settings.templates_dir, spec)


def make_context(tmp: Path) -> Context:
    templates = tmp / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "invite.j2").write_text(TEMPLATE, encoding="utf-8")
    limits = tmp / "rate_limits"
    limits.mkdir(exist_ok=True)
    (limits / "memory.toml").write_text(NO_LIMITS, encoding="utf-8")
    settings = Settings(
        database_url=DB_URL, redis_url=REDIS_URL, templates_dir=templates,
        rate_limits_dir=limits, state_dir=tmp / ".siyu",
    )  # fmt: skip
    engine = make_engine(f"{DB_URL}?application_name={BENCH_APP}")
    init_db(engine)
    configure_celery(REDIS_URL, visibility_timeout_s=300)
    return Context(settings=settings, engine=engine, redis=redis.Redis.from_url(REDIS_URL))


def state_counts(engine: Engine, run_id: int) -> dict[str, int]:
    stmt = select(D.state, func.count()).where(D.run_id == run_id).group_by(D.state)
    with engine.connect() as conn:
        return {state: int(n) for state, n in conn.execute(stmt)}


def sent_count(engine: Engine, run_id: int) -> int:
    stmt = select(func.count()).where(D.run_id == run_id, D.state == "sent")
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def verify_all_sent(engine: Engine, run_id: int, expected: int, label: str) -> None:
    """Every delivery `sent`, each with the channel's message id."""
    counts = state_counts(engine, run_id)
    if counts != {"sent": expected}:
        raise BenchError(f"{label}: expected {expected:,} rows all `sent`, found {counts}")
    no_id = select(func.count()).where(D.run_id == run_id, D.provider_message_id.is_(None))
    with engine.connect() as conn:
        missing = int(conn.execute(no_id).scalar_one())
    if missing:
        raise BenchError(f"{label}: {missing:,} `sent` rows have no provider message id")


# -- worker processes ----------------------------------------------------------------------


class Meter(threading.Thread):
    """Samples every `POLL_S`: the workers' RSS and CPU, and their database backends' CPU."""

    def __init__(self, pids: Sequence[int]) -> None:
        super().__init__(name="meter", daemon=True)
        self.workers = [psutil.Process(pid) for pid in pids]
        self.peaks = [0] * len(pids)
        self.peak_total = 0
        self.worker_cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen
        self.db_cpu: dict[int, float] = {}
        self.admin = create_engine(f"{PG}/test", pool_size=1)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._window = (0.0, 0.0)

    def run(self) -> None:
        while not self._halt.wait(POLL_S):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            rss = [self._sample_worker(proc) for proc in self.workers]
            self.peaks = [max(a, b) for a, b in zip(self.peaks, rss, strict=True)]
            self.peak_total = max(self.peak_total, sum(rss))
            for pid in self._backends():
                _record_cpu(self.db_cpu, pid)

    def _sample_worker(self, proc: psutil.Process) -> int:
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for member in family:
            _record_cpu(self.worker_cpu, member.pid)
        return sum(_rss(member) for member in family)

    def _backends(self) -> list[int]:
        query = text(
            "SELECT pid FROM pg_stat_activity WHERE datname = :db AND application_name <> :me"
        )
        with contextlib.suppress(Exception), self.admin.connect() as conn:
            return list(conn.execute(query, {"db": DB_NAME, "me": BENCH_APP}).scalars())
        return []

    def start_window(self) -> None:
        """The timed window starts: CPU used before (imports, start-up) is not counted."""
        self.sample()
        self._window = (sum(self.worker_cpu.values()), sum(self.db_cpu.values()))

    def end_window(self) -> Usage:
        self.sample()
        worker0, db0 = self._window
        return Usage(
            worker_cpu_s=sum(self.worker_cpu.values()) - worker0,
            db_cpu_s=sum(self.db_cpu.values()) - db0,
        )

    def stop(self) -> tuple[float, float]:
        """(largest single-worker peak, peak of the sum), in MB."""
        self._halt.set()
        self.join()
        self.sample()
        self.admin.dispose()
        return max(self.peaks) / 2**20, self.peak_total / 2**20


def _record_cpu(seen: dict[int, float], pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        seen[pid] = times.user + times.system


def _rss(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return int(proc.memory_info().rss)
    return 0


class WorkerPool:
    """W worker processes sharing the benchmark's database and Redis."""

    def __init__(self, commands: list[list[str]], env: dict[str, str], log_dir: Path) -> None:
        self.logs = [log_dir / f"worker-{i}.log" for i in range(len(commands))]
        self.procs = [
            procs.spawn(cmd, env=env, log=log, cwd=ROOT)
            for cmd, log in zip(commands, self.logs, strict=True)
        ]
        self.meter = Meter([p.pid for p in self.procs])
        self.meter.start()
        self.peak_rss_mb = self.total_rss_mb = 0.0

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"worker {proc.pid} exited with {proc.returncode}")

    def log_tails(self, chars: int = 2000) -> str:
        return "\n".join(
            f"--- {log.name}:\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs
        )

    def wait_consuming(self, client: redis.Redis, deadline: Deadline) -> None:
        """Until every process blocks on the broker (BRPOP): ready, and the clock may start."""
        give_up = time.monotonic() + 120
        while consumers(client) < len(self.procs):
            self.check_alive()
            deadline.check("waiting for workers to start")
            if time.monotonic() > give_up:
                raise BenchError("workers did not start consuming within 120 s")
            time.sleep(POLL_S)

    def stop(self) -> None:
        for proc in self.procs:
            procs.stop(proc, timeout_s=20)
        if self.meter.is_alive():
            self.peak_rss_mb, self.total_rss_mb = self.meter.stop()

    def usage(self, window: Usage) -> Usage:
        """`window`'s CPU figures with the peaks of the whole life of the pool."""
        window.peak_rss_mb, window.total_rss_mb = self.peak_rss_mb, self.total_rss_mb
        return window


@contextlib.contextmanager
def running_pool(
    commands: list[list[str]], env: dict[str, str], log_dir: Path
) -> Iterator[WorkerPool]:
    pool = WorkerPool(commands, env, log_dir)
    try:
        yield pool
    except BenchError as exc:
        raise BenchError(f"{exc}\n{pool.log_tails()}") from exc
    finally:
        pool.stop()


def worker_env(ctx: Context, observed: bool = False) -> dict[str, str]:
    return {
        **(JSON_LOGS if observed else {}),
        "SIYU_DATABASE_URL": DB_URL,
        "SIYU_REDIS_URL": REDIS_URL,
        "SIYU_TEMPLATES_DIR": str(ctx.settings.templates_dir),
        "SIYU_RATE_LIMITS_DIR": str(ctx.settings.rate_limits_dir),
        "SIYU_STATE_DIR": str(ctx.settings.state_dir),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


def siyu_commands(opts: Options, ports: Sequence[int] = ()) -> list[list[str]]:
    """The workers' command lines; with `ports`, each serves metrics on its own."""
    cmd = [sys.executable, "-m", "worker", "worker", "--concurrency", str(opts.concurrency)]
    extra = metrics_args(ports) if ports else [[] for _ in range(opts.workers)]
    return [[*cmd, *more] for more in extra]


def naive_commands(opts: Options) -> list[list[str]]:
    base = [sys.executable, "-m", "celery", "-A", "bench._naive", "worker", "--pool", opts.pool]
    base += ["--concurrency", str(opts.concurrency), "--queues", "naive", "--loglevel", "WARNING"]
    base += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [[*base, "--hostname", f"naive-{i}@%h"] for i in range(opts.workers)]


# -- phases --------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_world(opts: Options, contacts: int, tmp: Path) -> Iterator[Context]:
    """A new database and an empty Redis db with the benchmark's world in it."""
    recreate_database()
    redis.Redis.from_url(REDIS_URL).flushdb()
    ctx = make_context(tmp)
    try:
        started = time.monotonic()
        build_world(ctx, contacts, opts.accounts)
        progress(f"loaded {contacts:,} contacts in {time.monotonic() - started:.1f} s")
        yield ctx
    finally:
        ctx.engine.dispose()
        ctx.redis.close()


def wait_until(
    check: Callable[[], bool], pool: WorkerPool, deadline: Deadline, label: str, every_s: float,
    show: Callable[[], str],
) -> None:  # fmt: skip
    """Poll `check()` every `POLL_S`; print `show()` every `every_s`."""
    shown = time.monotonic()
    while not check():
        pool.check_alive()
        deadline.check(label)
        if time.monotonic() - shown >= every_s:
            progress(f"{label}: {show()}")
            shown = time.monotonic()
        time.sleep(POLL_S)


def progress_every_s(contacts: int) -> float:
    """Counting `sent` rows costs PostgreSQL time in proportion to them: count rarely."""
    return max(5.0, contacts * PROGRESS_PER_ROW_S)


def run_siyu(
    opts: Options, contacts: int, deadline: Deadline, tmp: Path, observed: bool = False
) -> Phase:
    label = f"siyu {contacts:,}" + (" observed" if observed else "")
    ports = free_ports(opts.workers) if observed else []
    with fresh_world(opts, contacts, tmp) as ctx:
        rid = premade_run(ctx) if opts.lanes_only else None
        log_dir = Path(tempfile.mkdtemp(prefix="siyu-", dir=tmp))
        commands, env = siyu_commands(opts, ports), worker_env(ctx, observed)
        observing = scraping(ports, contacts, opts.scrape_s, log_dir)
        with running_pool(commands, env, log_dir) as pool, observing as scraper:
            if scraper is not None:
                scraper.start(ROOT)
            pool.wait_consuming(ctx.redis, deadline)
            notes = {"load_1m": os.getloadavg()[0]}
            pool.meter.start_window()
            started = time.monotonic()
            if rid is None:  # start renders every member and plans: part of the timed work
                rid = run_id(start_campaign(ctx, CAMPAIGN).run)
                notes["start_s"] = time.monotonic() - started
            else:
                tick(ctx, force=True)  # wakes the lanes of the materialised run
            status = select(R.status, R.materialised).where(R.id == rid)

            def completed() -> bool:
                with ctx.engine.connect() as conn:
                    state, materialised = conn.execute(status).one()
                if materialised and "materialised_s" not in notes:
                    notes["materialised_s"] = time.monotonic() - started
                return bool(state == "completed")

            note = partial(_sent_note, ctx, rid, started)
            wait_until(completed, pool, deadline, label, progress_every_s(contacts), note)
            seconds = time.monotonic() - started
            usage = pool.meter.end_window()
            if scraper is not None:
                seen = scraper.stop()
                notes["scrapes"] = seen.scrapes
                notes["db_read_ms_max"] = max(seen.db_read_s, default=0.0) * 1000
        verify_all_sent(ctx.engine, rid, contacts, label)
    return Phase("siyu", contacts, seconds, pool.usage(usage), notes)


@contextlib.contextmanager
def scraping(
    ports: Sequence[int], contacts: int, interval_s: float, log_dir: Path
) -> Iterator[ScraperProcess | None]:
    """A scraper process of the workers on `ports` and of the database (none without
    ports); on a clean exit every scrape must have worked and the database gauges count
    every contact `sent`."""
    if not ports:
        yield None
        return
    scraper = ScraperProcess(ports, DB_URL, interval_s, log_dir / "scrapes.json")
    try:
        yield scraper
        seen = scraper.stop()
    finally:
        scraper.kill()
    if seen.last_sent != contacts or seen.failures:
        raise BenchError(
            f"metrics: siyu_deliveries sent={seen.last_sent:,.0f}, not {contacts:,}, "
            f"or {seen.failures} worker scrapes failed"
        )


def premade_run(ctx: Context) -> int:
    """Start the campaign and materialise it here, before any worker runs (not timed)."""
    rid = run_id(start_campaign(ctx, CAMPAIGN).run)
    materialise(ctx, rid)
    ctx.redis.flushdb()  # the materialise trigger start_campaign sent
    return rid


def run_baseline(opts: Options, contacts: int, deadline: Deadline, tmp: Path) -> Phase:
    from bench import _naive

    label = f"baseline {contacts:,}"
    with fresh_world(opts, contacts, tmp) as ctx:
        began = time.monotonic()
        rid = premade_run(ctx)
        notes = {"materialise_s": time.monotonic() - began}
        with ctx.engine.connect() as conn:
            ids = list(conn.execute(select(D.id).where(D.run_id == rid).order_by(D.id)).scalars())
        _naive.app.conf.broker_url = REDIS_URL
        log_dir = Path(tempfile.mkdtemp(prefix="naive-", dir=tmp))
        with running_pool(naive_commands(opts), worker_env(ctx), log_dir) as pool:
            pool.wait_consuming(ctx.redis, deadline)
            notes["load_1m"] = os.getloadavg()[0]
            pool.meter.start_window()
            started, cpu = time.monotonic(), time.process_time()
            for delivery_id in ids:
                _naive.send.delay(delivery_id)
            notes["enqueue_s"] = time.monotonic() - started
            notes["producer_cpu_s"] = time.process_time() - cpu
            pending = select(D.id).where(D.run_id == rid, D.state == "pending").limit(1)

            def drained() -> bool:
                with ctx.engine.connect() as conn:
                    return conn.execute(pending).first() is None

            note = partial(_sent_note, ctx, rid, started)
            wait_until(drained, pool, deadline, label, progress_every_s(contacts), note)
            seconds = time.monotonic() - started
            usage = pool.meter.end_window()
        verify_all_sent(ctx.engine, rid, contacts, label)
    return Phase("baseline", contacts, seconds, pool.usage(usage), notes)


def run_id(run: CampaignRun) -> int:
    if run.id is None:
        raise BenchError("start_campaign returned a run without an id")
    return run.id


def _sent_note(ctx: Context, run_id: int, started: float) -> str:
    sent = sent_count(ctx.engine, run_id)
    return f"{sent:,} sent, {sent / (time.monotonic() - started):,.0f}/s"


# -- output --------------------------------------------------------------------------------


def print_table(opts: Options, phases: list[Phase]) -> None:
    heads = ("phase", "contacts", "W x C", "seconds", "msgs/s", "worker CPU", "DB CPU",
             "peak RSS/worker", "all workers")  # fmt: skip
    widths = (9, 10, 7, 8, 8, 12, 12, 16, 12)
    print("\n" + "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    for p in phases:
        u = p.usage
        cells = (p.label, f"{p.contacts:,}", f"{opts.workers}x{opts.concurrency}",
                 f"{p.seconds:.1f}", f"{p.rate:,.0f}", _per_msg(u.worker_cpu_s, p.contacts),
                 _per_msg(u.db_cpu_s, p.contacts), f"{u.peak_rss_mb:.1f} MB",
                 f"{u.total_rss_mb:.1f} MB")  # fmt: skip
        print("".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print("(CPU: microseconds per delivery inside the timed window, all workers together;")
    print(" DB: the PostgreSQL backends serving the benchmark database)")
    for p in phases:
        notes = ", ".join(f"{key} {value:.1f}" for key, value in p.notes.items())
        print(f"  {p.label} {p.contacts:,}: {notes}")


def _per_msg(cpu_s: float, messages: int) -> str:
    return f"{cpu_s / messages * 1e6:,.0f} µs"


def summary(opts: Options, phases: list[Phase]) -> dict[str, Any]:
    siyu = next(p for p in phases if p.label == "siyu")
    base = next((p for p in phases if p.label == "baseline"), None)
    big = next((p for p in phases if p.label == "siyu" and p.contacts == MILLION), None)
    ratio = siyu.rate / base.rate if base else None
    return {
        "rate": round(siyu.rate, 1),
        "baseline_rate": round(base.rate, 1) if base else None,
        "ratio": round(ratio, 2) if ratio else None,
        "peak_rss_mb": round(siyu.usage.peak_rss_mb, 1),
        "peak_rss_mb_1m": round(big.usage.peak_rss_mb, 1) if big else None,
        "contacts": siyu.contacts,
        "workers": opts.workers,
        "concurrency": opts.concurrency,
        "accounts": opts.accounts,
        "lanes_only": opts.lanes_only,
        "seconds": round(siyu.seconds, 2),
        "baseline_seconds": round(base.seconds, 2) if base else None,
        "seconds_1m": round(big.seconds, 2) if big else None,
        "rate_1m": round(big.rate, 1) if big else None,
        "worker_cpu_us_per_msg": _us(siyu.usage.worker_cpu_s, siyu.contacts),
        "db_cpu_us_per_msg": _us(siyu.usage.db_cpu_s, siyu.contacts),
        "baseline_worker_cpu_us_per_msg": _us(base.usage.worker_cpu_s, base.contacts)
        if base
        else None,
        "baseline_db_cpu_us_per_msg": _us(base.usage.db_cpu_s, base.contacts) if base else None,
        "load_1m": round(max(p.notes.get("load_1m", 0.0) for p in phases), 2),
    }


def _us(cpu_s: float, messages: int) -> float:
    return round(cpu_s / messages * 1e6, 1)


def print_verdict(result: dict[str, Any]) -> None:
    rate_ok = "ok" if result["rate"] >= 5000 else "BELOW GOAL"
    print(f"\nsiyu {result['rate']:,.0f} deliveries/s (goal >= 5,000: {rate_ok})")
    if result["ratio"] is not None:
        ratio_ok = "ok" if result["ratio"] >= 5 else "BELOW GOAL"
        print(f"siyu / baseline = {result['ratio']:.2f}x (goal >= 5x: {ratio_ok})")
    if result["peak_rss_mb_1m"] is not None and result["contacts"] != MILLION:
        growth = result["peak_rss_mb_1m"] / result["peak_rss_mb"]
        print(f"worker peak RSS {result['peak_rss_mb']:.0f} MB at {result['contacts']:,}, "
              f"{result['peak_rss_mb_1m']:.0f} MB at 1,000,000 ({growth:.2f}x)")  # fmt: skip


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker (C)")
    parser.add_argument("--accounts", type=int, default=4, help="memory sender accounts")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"],
                        help="Celery pool of the baseline workers")  # fmt: skip
    parser.add_argument("--lanes-only", action="store_true",
                        help="diagnostic: materialise before siyu's clock starts")  # fmt: skip
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--million", action=argparse.BooleanOptionalAction, default=True,
                        help="also run siyu with 1,000,000 contacts for peak RSS")  # fmt: skip
    parser.add_argument("--skip-million", dest="million", action="store_false")
    parser.add_argument("--timeout-min", type=float, default=40.0, help="give up after this")
    parser.add_argument("--observed", action="store_true",
                        help="siyu with metrics served and scraped, and JSON logs")  # fmt: skip
    parser.add_argument("--compare-observed", type=int, default=0, metavar="N",
                        help="only siyu: N runs plain, N observed, alternating")  # fmt: skip
    parser.add_argument("--scrape-s", type=float, default=SCRAPE_S, metavar="S",
                        help="observed: seconds between scrapes (Prometheus: 15-60)")  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.contacts, args.workers, args.concurrency, args.accounts) < 1:
        raise SystemExit("--contacts, --workers, --concurrency and --accounts must be >= 1")
    return Options(
        contacts=args.contacts, workers=args.workers, concurrency=args.concurrency,
        accounts=args.accounts, pool=args.pool, lanes_only=args.lanes_only,
        baseline=not args.skip_baseline, million=args.million, timeout_s=args.timeout_min * 60,
        observed=args.observed, compare_rounds=max(0, args.compare_observed),
        scrape_s=max(0.5, args.scrape_s),
    )  # fmt: skip


def run_phases(opts: Options, tmp: Path) -> list[Phase]:
    """The phases, in order: siyu, the baseline, siyu with a million contacts."""
    deadline = Deadline(opts.timeout_s)
    phases = [run_siyu(opts, opts.contacts, deadline, tmp, observed=opts.observed)]
    progress(f"siyu: {phases[-1].rate:,.0f}/s")
    if opts.baseline:
        phases.append(run_baseline(opts, opts.contacts, deadline, tmp))
        progress(f"baseline: {phases[-1].rate:,.0f}/s")
    if opts.million and opts.contacts != MILLION:
        phases.append(run_siyu(opts, MILLION, deadline, tmp))
    return phases


def run_comparison(opts: Options, tmp: Path) -> dict[str, Any]:
    """The siyu phase `compare_rounds` times each way, the order swapped every round so that
    neither side always runs on a warmer (or busier) machine."""
    deadline = Deadline(opts.timeout_s)
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for round_ in range(opts.compare_rounds):
        for observed in (False, True) if round_ % 2 == 0 else (True, False):
            phase = run_siyu(opts, opts.contacts, deadline, tmp, observed=observed)
            cpu = (
                _us(phase.usage.worker_cpu_s, phase.contacts),
                _us(phase.usage.db_cpu_s, phase.contacts),
            )
            runs[observed].append((phase.rate, *cpu))
            notes = ", ".join(f"{k} {v:.1f}" for k, v in phase.notes.items())
            way = "observed" if observed else "plain"
            progress(f"round {round_ + 1} {way}: {phase.rate:,.0f}/s ({notes})")
    return comparison(runs[False], runs[True])


def print_comparison(compared: dict[str, Any], rounds: int) -> None:
    print()
    for name, unit in (("rate", "/s"), ("worker_cpu_us", " µs/msg"), ("db_cpu_us", " µs/msg")):
        plain, seen = compared[f"{name}_plain_median"], compared[f"{name}_observed_median"]
        change = compared[f"{name}_observed_vs_plain"]
        print(f"{name}: plain {plain:,.1f}{unit}, observed {seen:,.1f}{unit} "
              f"(medians of {rounds}): {change:+.1%}")  # fmt: skip


def cleanup() -> None:
    with contextlib.suppress(Exception):
        drop_database()
    redis.Redis.from_url(REDIS_URL).flushdb()


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.compare_rounds:
        compared = guarded("siyu-bench-", lambda tmp: run_comparison(opts, tmp), cleanup)
        print_comparison(compared, opts.compare_rounds)
        print(json.dumps(compared))
        return 0
    phases = guarded("siyu-bench-", lambda tmp: run_phases(opts, tmp), cleanup)
    result = summary(opts, phases)
    print_table(opts, phases)
    print_verdict(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
