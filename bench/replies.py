"""Inbound replies: decision latency and sustained inbound/s through `siyu api` + one worker.

    .venv/bin/python bench/replies.py [--rates 50,200] [--seconds 15] [--flood 4000]
        [--connections 16] [--contacts 2000] [--accounts 4] [--concurrency 8] [--sqlite]
        [--skip-baseline] [--timeout-min 10]

A fresh PostgreSQL database (`siyu_bench_replies`; `--sqlite`: a file under a temporary
folder), an empty Redis db 11, `siyu init`, `mock` accounts and contacts; then one `siyu api`
process and ONE `python -m worker worker --concurrency C` process, both ready (the worker
blocking on the broker, 20 warm-up webhooks decided) before any clock starts. No LLM is
configured, so the retrieval responder decides and the LLM call is excluded by construction;
reply delivery and its human-like delay come after `decided_at` and are not measured either.
Texts are drawn in turn from `tests/data/replies_dev.jsonl` and `replies_eval.jsonl`, senders
in turn from the contacts; each inbound webhook is signed (Standard Webhooks) when it is sent.

* baseline (in this process, before the services start): `decide()` alone on every text (the
  pure decision), then `record_inbound` + `handle_inbound` on `--baseline-messages` messages,
  one at a time (the same database work without HTTP, the broker or Celery);
* paced, once per rate of `--rates`: that many webhooks/s for `--seconds`, open loop over
  `--connections` connections; the latency figures come from these phases (the JSON's
  top-level ones from the last rate, the goal's 200/s by default);
* flood: `--flood` webhooks as fast as `--connections` connections allow: the sustained
  accepted/s at the API and decided/s by the worker.

Decision latency is `decided_at - created_at` of each message: `created_at` is written by the
API when it stores the message, `decided_at` by the worker, both `utcnow()` of the same host
clock. "end to end" runs from the moment the client sent the request (the same clock) to
`decided_at`. The benchmark fails unless every webhook got 200 and every message was decided.
Prints a table, then one JSON object as the last line. Processes, the database and Redis db 11
are cleaned up on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import Engine, create_engine, insert, select, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench._harness import (  # noqa: E402
    BENCH_APP,
    PG,
    BenchError,
    admin_sql,
    consumers,
    guarded,
    progress,
)
from worker.config import Settings  # noqa: E402
from worker.replies.handle import handle_inbound  # noqa: E402
from worker.replies.inbound import InboundPayload, record_inbound  # noqa: E402
from worker.replies.model import Question  # noqa: E402
from worker.replies.pipeline import decide  # noqa: E402
from worker.replies.responder import RetrievalResponder  # noqa: E402
from worker.replies.retrieval import Retriever  # noqa: E402
from worker.runtime import procs  # noqa: E402
from worker.services.accounts import add_account  # noqa: E402
from worker.store import tables  # noqa: E402
from worker.store.db import make_engine  # noqa: E402
from worker.store.models import utcnow  # noqa: E402
from worker.webhooks import new_secret, signed_headers  # noqa: E402

DB_NAME = "siyu_bench_replies"
REDIS_URL = "redis://127.0.0.1:6379/11"
CHANNEL = "mock"
POLL_S = 0.1
WARMUP = 20  # webhooks decided before any clock starts: jieba's dictionary, pools, imports
TEXT_FILES = ("tests/data/replies_dev.jsonl", "tests/data/replies_eval.jsonl")
M = tables.messages.c
GOAL_P95_MS, GOAL_RATE = 50.0, 200.0


@dataclass(frozen=True)
class Options:
    rates: tuple[float, ...]
    seconds: float
    flood: int
    connections: int
    contacts: int
    accounts: int
    concurrency: int
    sqlite: bool
    baseline: bool
    baseline_messages: int
    timeout_s: float


@dataclass
class Sent:
    """One webhook as the client saw it."""

    key: str  # the provider message id
    sent_wall: float  # time.time() when the request left
    http_s: float = 0.0
    message_id: int | None = None


@dataclass
class Phase:
    label: str
    sent: list[Sent]
    seconds: float  # first request sent -> last response
    decided_seconds: float  # first request sent -> last decided_at
    decision_ms: list[float]  # decided_at - created_at, sorted
    end_to_end_ms: list[float]  # request sent -> decided_at, sorted
    cpu_us: dict[str, float] = field(default_factory=dict)  # per message, by process
    load_1m: float = 0.0  # the machine's load average when the phase ended (others' work too)

    @property
    def accepted_per_s(self) -> float:
        return len(self.sent) / self.seconds

    @property
    def decided_per_s(self) -> float:
        return len(self.sent) / self.decided_seconds

    def http_ms(self) -> list[float]:
        return sorted(s.http_s * 1000 for s in self.sent)


@dataclass(frozen=True)
class Baseline:
    decide_us: float  # decide() alone, per message
    handle_us: float  # record_inbound + handle_inbound in-process, per message
    handle_ms: list[float]  # the same, per message, sorted


def pct(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


# -- the world -----------------------------------------------------------------------------


def database_url(opts: Options, tmp: Path) -> str:
    if opts.sqlite:
        return f"sqlite:///{tmp / 'bench.db'}"
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    return f"{PG}/{DB_NAME}"


def load_texts() -> list[str]:
    texts = []
    for name in TEXT_FILES:
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def make_env(db_url: str, tmp: Path, secret: str) -> dict[str, str]:
    templates = tmp / "templates"
    shutil.copytree(ROOT / "templates" / "replies", templates / "replies")
    return {
        "SIYU_DATABASE_URL": db_url,
        "SIYU_REDIS_URL": REDIS_URL,
        "SIYU_TEMPLATES_DIR": str(templates),
        "SIYU_RATE_LIMITS_DIR": str(ROOT / "rate_limits"),
        "SIYU_STATE_DIR": str(tmp / ".siyu"),
        "SIYU_WEBHOOK_SECRET": secret,
        "SIYU_LLM_BASE_URL": "",  # retrieval responder: the LLM call is excluded
        "PYTHONUNBUFFERED": "1",
    }


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        database_url=env["SIYU_DATABASE_URL"], redis_url=REDIS_URL,
        templates_dir=Path(env["SIYU_TEMPLATES_DIR"]),
        rate_limits_dir=Path(env["SIYU_RATE_LIMITS_DIR"]),
        state_dir=Path(env["SIYU_STATE_DIR"]), webhook_secret=env["SIYU_WEBHOOK_SECRET"],
    )  # fmt: skip


def build_world(env: dict[str, str], opts: Options, tmp: Path) -> Engine:
    """`siyu init`, the accounts and the contacts (learners a campaign wrote to)."""
    init = subprocess.run(
        [sys.executable, "-m", "worker", "init"], env=procs_env(env), cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        raise BenchError(f"siyu init failed: {init.stderr.strip()}")
    url = env["SIYU_DATABASE_URL"]
    engine = make_engine(url if opts.sqlite else f"{url}?application_name={BENCH_APP}")
    for name in account_names(opts):
        add_account(engine, name, CHANNEL, config={"url": "http://127.0.0.1:9"})
    now = utcnow()
    rows = [
        {"channel": CHANNEL, "external_id": contact_id(i), "name": f"学员{i}", "tags": [],
         "attrs": {}, "created_at": now, "updated_at": now}
        for i in range(opts.contacts)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(tables.contacts), rows)
    return engine


def procs_env(env: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **env, "PYTHONPATH": path}


def account_names(opts: Options) -> list[str]:
    return [f"acct{i:02d}" for i in range(1, opts.accounts + 1)]


def contact_id(i: int) -> str:
    return f"wx_{i:06d}"


# -- processes -----------------------------------------------------------------------------


class Services:
    """One `siyu api` and one `siyu worker`, with their logs and CPU counters."""

    def __init__(self, env: dict[str, str], opts: Options, log_dir: Path, port: int) -> None:
        self.logs = {"api": log_dir / "api.log", "worker": log_dir / "worker.log"}
        api = [sys.executable, "-m", "worker", "api", "--port", str(port)]
        work = [sys.executable, "-m", "worker", "worker", "--concurrency", str(opts.concurrency)]
        env = procs_env(env)
        self.procs = {
            "api": procs.spawn(api, env=env, log=self.logs["api"], cwd=ROOT),
            "worker": procs.spawn(work, env=env, log=self.logs["worker"], cwd=ROOT),
        }
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}\n{self.log_tails()}")

    def log_tails(self, chars: int = 2000) -> str:
        return "\n".join(
            f"--- {name}:\n{path.read_text(errors='replace')[-chars:]}"
            for name, path in self.logs.items()
            if path.exists()
        )

    def wait_ready(self, client: redis.Redis, deadline: float) -> None:
        while not (self._api_up() and consumers(client) >= 1):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"services did not start\n{self.log_tails()}")
            time.sleep(0.2)

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def cpu_s(self) -> dict[str, float]:
        return {name: _cpu_s(proc.pid) for name, proc in self.procs.items()}

    def stop(self) -> None:
        for proc in self.procs.values():
            procs.stop(proc, timeout_s=20)


def _cpu_s(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        total = 0.0
        for member in [root, *root.children(recursive=True)]:
            times = member.cpu_times()
            total += times.user + times.system
        return total
    return 0.0


def db_cpu_s(opts: Options) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the benchmark database (none: SQLite)."""
    if opts.sqlite:
        return {}
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND application_name <> :me")
    admin = create_engine(f"{PG}/test", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            pids = list(conn.execute(query, {"db": DB_NAME, "me": BENCH_APP}).scalars())
    finally:
        admin.dispose()
    return {pid: _cpu_s(pid) for pid in pids}


def db_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """The backends' CPU seconds between two readings. A backend that ended in between (the
    pool closes its overflow connections) takes its CPU with it: not counted rather than
    counted negative; one that started in between counts from zero."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_services(
    env: dict[str, str], opts: Options, tmp: Path, deadline: float
) -> Iterator[Services]:
    services = Services(env, opts, tmp, free_port())
    try:
        services.wait_ready(redis.Redis.from_url(REDIS_URL), deadline)
        yield services
    finally:
        services.stop()


# -- the client ----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads a `Content-Length` answer.

    Not httpx: its async pool costs 1.2 ms of CPU per request on one connection and 2.3 ms on
    sixteen (measured against a bare uvicorn app), CPU that on a 2-core machine is taken from
    the services being measured. This costs about a tenth of that.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(head.encode() + b"\r\n" + body)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


class Sender:
    """Signs and posts inbound webhooks: texts and senders in turn, accounts in turn."""

    def __init__(self, port: int, secret: str, texts: list[str], opts: Options) -> None:
        self.port = port
        self.path = f"/v1/inbound/{CHANNEL}"
        self.secret = secret
        self.texts = itertools.cycle(texts)
        self.senders = itertools.cycle(range(opts.contacts))
        self.accounts = itertools.cycle(account_names(opts))
        self.serial = itertools.count(1)

    def next_body(self, phase: str) -> tuple[str, bytes]:
        key = f"{phase}-{next(self.serial)}"
        body = {
            "message_id": key, "account": next(self.accounts),
            "from": contact_id(next(self.senders)), "text": next(self.texts),
        }  # fmt: skip
        return key, json.dumps(body, ensure_ascii=False).encode()

    async def post(self, conn: Connection, phase: str) -> Sent:
        key, body = self.next_body(phase)
        now = datetime.now(UTC)
        headers = signed_headers(self.secret, key, now, body)
        headers["Content-Type"] = "application/json"
        sent = Sent(key, now.timestamp())
        started = time.perf_counter()
        status, answer = await conn.post(self.path, body, headers)
        sent.http_s = time.perf_counter() - started
        document = json.loads(answer) if answer else {}
        if status != 200 or document.get("duplicate"):
            raise BenchError(f"{key}: HTTP {status} {answer[:200]!r}")
        sent.message_id = int(document["message_id"])
        return sent


async def send(sender: Sender, opts: Options, phase: str, count: int, rate: float) -> list[Sent]:
    """`count` webhooks at `rate`/s (open loop: each leaves at its time, as soon as one of the
    connections is free); rate 0: as fast as `opts.connections` connections allow."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [Connection("127.0.0.1", sender.port) for _ in range(opts.connections)]
    for conn in conns:
        idle.put_nowait(conn)
    start = time.perf_counter()

    async def one(i: int) -> Sent:
        if rate > 0:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        conn = await idle.get()
        try:
            return await sender.post(conn, phase)
        finally:
            idle.put_nowait(conn)

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for conn in conns:
            conn.close()


# -- phases --------------------------------------------------------------------------------


def wait_decided(engine: Engine, sent: list[Sent], services: Services, timeout_s: float) -> None:
    ids = [s.message_id for s in sent]
    query = select(M.id).where(M.id.in_(ids), M.decided_at.is_(None)).limit(1)
    give_up = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            if conn.execute(query).first() is None:
                return
        services.check_alive()
        if time.monotonic() > give_up:
            raise BenchError(f"messages undecided after {timeout_s:.0f} s\n{services.log_tails()}")
        time.sleep(POLL_S)


def run_phase(
    label: str, count: int, rate: float, sender: Sender, services: Services, engine: Engine,
    opts: Options,
) -> Phase:  # fmt: skip
    cpu0, db0 = services.cpu_s(), db_cpu_s(opts)
    client0 = time.process_time()
    started_wall = time.time()
    started = time.perf_counter()
    sent = asyncio.run(send(sender, opts, label, count, rate))
    seconds = time.perf_counter() - started
    wait_decided(engine, sent, services, timeout_s=max(60.0, count / 20))
    cpu1, db1 = services.cpu_s(), db_cpu_s(opts)
    cpu = {name: cpu1[name] - cpu0[name] for name in cpu0}
    cpu["db"] = db_cpu_between(db0, db1)
    cpu["client"] = time.process_time() - client0
    decision, end_to_end, last_decided = latencies(engine, sent)
    phase = Phase(
        label, sent, seconds, last_decided - started_wall, decision, end_to_end,
        {name: s / count * 1e6 for name, s in cpu.items()}, os.getloadavg()[0],
    )  # fmt: skip
    progress(
        f"{label}: {count} webhooks, {phase.accepted_per_s:,.0f} accepted/s, "
        f"{phase.decided_per_s:,.0f} decided/s, decision p95 {pct(decision, 95):.1f} ms"
    )
    return phase


def latencies(engine: Engine, sent: list[Sent]) -> tuple[list[float], list[float], float]:
    """(decision ms sorted, end-to-end ms sorted, the last decided_at as a Unix time)."""
    by_id = {s.message_id: s for s in sent}
    query = select(M.id, M.created_at, M.decided_at).where(M.id.in_(list(by_id)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if len(rows) != len(sent):
        raise BenchError(f"{len(sent)} webhooks accepted but {len(rows)} messages stored")
    decision, end_to_end, last = [], [], 0.0
    for message_id, created_at, decided_at in rows:
        decided = decided_at.replace(tzinfo=UTC).timestamp()
        decision.append((decided_at - created_at).total_seconds() * 1000)
        end_to_end.append((decided - by_id[message_id].sent_wall) * 1000)
        last = max(last, decided)
    return sorted(decision), sorted(end_to_end), last


def warm_up(sender: Sender, services: Services, engine: Engine, opts: Options) -> None:
    sent = asyncio.run(send(sender, opts, "warmup", WARMUP, 0))
    wait_decided(engine, sent, services, timeout_s=120)


def run_baseline(engine: Engine, env: dict[str, str], texts: list[str], opts: Options) -> Baseline:
    """The decision alone, then store + decide in-process: no HTTP, no broker, no Celery."""
    settings = settings_of(env)
    retriever = Retriever.for_templates(settings.templates_dir)
    questions = [Question(text=t, account_name="acct01") for t in texts]
    for q in questions[:20]:  # jieba's dictionary, the index
        decide(q, retriever, RetrievalResponder())
    rounds = max(1, 2000 // len(questions))
    started = time.perf_counter()
    for _ in range(rounds):
        for q in questions:
            decide(q, retriever, RetrievalResponder())
    decide_us = (time.perf_counter() - started) / (rounds * len(questions)) * 1e6

    names, text_cycle = itertools.cycle(account_names(opts)), itertools.cycle(texts)
    handled: list[float] = []
    for i in range(opts.baseline_messages):
        payload = InboundPayload.model_validate(
            {"message_id": f"base-{i}", "account": next(names),
             "from": contact_id(i % opts.contacts), "text": next(text_cycle)}
        )  # fmt: skip
        started = time.perf_counter()
        stored = record_inbound(engine, CHANNEL, payload)
        handle_inbound(engine, settings, stored.message_id)
        handled.append((time.perf_counter() - started) * 1000)
    handle_us = sum(handled) / len(handled) * 1000
    progress(f"baseline: decide {decide_us:,.0f} µs, store + handle {handle_us:,.0f} µs")
    return Baseline(decide_us, handle_us, sorted(handled))


def run_all(opts: Options, tmp: Path) -> tuple[Baseline | None, list[Phase], Phase]:
    deadline = time.monotonic() + opts.timeout_s
    secret = new_secret()
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = make_env(database_url(opts, tmp), tmp, secret)
    engine = build_world(env, opts, tmp)
    texts = load_texts()
    try:
        base = run_baseline(engine, env, texts, opts) if opts.baseline else None
        with running_services(env, opts, tmp, deadline) as services:
            sender = Sender(services.port, secret, texts, opts)
            warm_up(sender, services, engine, opts)
            paced = []
            for rate in opts.rates:
                count = max(1, round(rate * opts.seconds))
                paced.append(run_phase(f"{rate:g}/s", count, rate, sender, services, engine, opts))
            flood = run_phase("flood", opts.flood, 0, sender, services, engine, opts)
    finally:
        engine.dispose()
    return base, paced, flood


# -- output --------------------------------------------------------------------------------


def print_table(opts: Options, base: Baseline | None, phases: Sequence[Phase]) -> None:
    heads = ("phase", "webhooks", "accepted/s", "decided/s", "decision p50/p95/p99 ms",
             "end-to-end p50/p95", "HTTP p50/p95 ms")  # fmt: skip
    widths = (7, 10, 12, 11, 28, 22, 18)
    print("\n" + "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    for p in phases:
        d, e, h = p.decision_ms, p.end_to_end_ms, p.http_ms()
        cells = (p.label, f"{len(p.sent):,}", f"{p.accepted_per_s:,.0f}",
                 f"{p.decided_per_s:,.0f}",
                 f"{pct(d, 50):.1f} / {pct(d, 95):.1f} / {pct(d, 99):.1f}",
                 f"{pct(e, 50):.1f} / {pct(e, 95):.1f}",
                 f"{pct(h, 50):.1f} / {pct(h, 95):.1f}")  # fmt: skip
        print("".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print("CPU per message (µs), and the machine's 1-minute load average after the phase:")
    for p in phases:
        cpu = ", ".join(f"{k} {v:,.0f}" for k, v in p.cpu_us.items())
        print(f"  {p.label}: {cpu}; load {p.load_1m:.1f}")
    if base is not None:
        print(f"baseline in-process: decide() {base.decide_us:,.0f} µs/message; "
              f"record_inbound + handle_inbound {base.handle_us:,.0f} µs/message "
              f"(p95 {pct(base.handle_ms, 95):.1f} ms)")  # fmt: skip
    db = "SQLite" if opts.sqlite else "PostgreSQL"
    print(f"({db}; one api, one worker x {opts.concurrency} threads; "
          f"{opts.connections} client connections)")  # fmt: skip


def summary(
    opts: Options, base: Baseline | None, paced: list[Phase], flood: Phase
) -> dict[str, Any]:
    goal = paced[-1]
    return {
        **latency(goal),
        "paced_rate": opts.rates[-1],
        "accepted_per_s": _r(flood.accepted_per_s),
        "decided_per_s": _r(flood.decided_per_s),
        "flood_webhooks": len(flood.sent),
        "by_rate": {f"{rate:g}": latency(p) for rate, p in zip(opts.rates, paced, strict=True)},
        "cpu_us_per_msg": {k: round(v) for k, v in flood.cpu_us.items()},
        "baseline_decide_us": _r(base.decide_us) if base else None,
        "baseline_handle_us": _r(base.handle_us) if base else None,
        "database": "sqlite" if opts.sqlite else "postgresql",
        "concurrency": opts.concurrency,
        "connections": opts.connections,
        "load_1m": _r(max(p.load_1m for p in [*paced, flood])),
    }


def latency(p: Phase) -> dict[str, float]:
    d, http = p.decision_ms, p.http_ms()
    return {
        "decision_p50_ms": _r(pct(d, 50)),
        "decision_p95_ms": _r(pct(d, 95)),
        "decision_p99_ms": _r(pct(d, 99)),
        "end_to_end_p95_ms": _r(pct(p.end_to_end_ms, 95)),
        "http_p50_ms": _r(pct(http, 50)),
        "http_p95_ms": _r(pct(http, 95)),
        "accepted_per_s": _r(p.accepted_per_s),
        "decided_per_s": _r(p.decided_per_s),
    }


def _r(x: float) -> float:
    return round(x, 2)


def print_verdict(result: dict[str, Any]) -> None:
    p95, rate = result["decision_p95_ms"], min(result["accepted_per_s"], result["decided_per_s"])
    print(f"\ndecision p95 {p95:.1f} ms at {result['paced_rate']:g}/s "
          f"(goal < {GOAL_P95_MS:g}: {'ok' if p95 < GOAL_P95_MS else 'ABOVE GOAL'})")  # fmt: skip
    print(f"sustained {rate:,.0f} inbound/s through api + one worker "
          f"(goal >= {GOAL_RATE:g}: {'ok' if rate >= GOAL_RATE else 'BELOW GOAL'})")  # fmt: skip


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", default=f"50,{GOAL_RATE:g}",
                        help="paced phases, webhooks/s, comma-separated")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=15.0, help="each paced phase")
    parser.add_argument("--flood", type=int, default=4000, help="flood phase, webhooks")
    parser.add_argument("--connections", type=int, default=16, help="client connections")
    parser.add_argument("--contacts", type=int, default=2000, help="learners writing in")
    parser.add_argument("--accounts", type=int, default=4, help="mock accounts written to")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--baseline-messages", type=int, default=500)
    parser.add_argument("--timeout-min", type=float, default=10.0, help="give up after this")
    args = parser.parse_args(argv)
    try:
        rates = tuple(float(r) for r in args.rates.split(","))
    except ValueError:
        raise SystemExit(f"--rates: numbers separated by commas, got {args.rates!r}") from None
    if min(*rates, args.seconds, args.flood, args.connections, args.contacts,
           args.accounts, args.concurrency, args.baseline_messages) <= 0:  # fmt: skip
        raise SystemExit("every count, rate and duration must be > 0")
    return Options(
        rates=rates, seconds=args.seconds, flood=args.flood, connections=args.connections,
        contacts=args.contacts, accounts=args.accounts, concurrency=args.concurrency,
        sqlite=args.sqlite, baseline=not args.skip_baseline,
        baseline_messages=args.baseline_messages, timeout_s=args.timeout_min * 60,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)

    def cleanup() -> None:
        if not opts.sqlite:
            with contextlib.suppress(Exception):
                admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        redis.Redis.from_url(REDIS_URL).flushdb()

    base, paced, flood = guarded("siyu-bench-replies-", lambda tmp: run_all(opts, tmp), cleanup)
    result = summary(opts, base, paced, flood)
    print_table(opts, base, [*paced, flood])
    print_verdict(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
