"""What one lane of each real channel adapter can push, and its CPU per message.

    .venv/bin/python bench/channels.py [--n 2000] [--rounds 3] [--only webhook,telegram]

Each channel's adapter (`build_channel`) sends `--n` messages one after another from one
thread, as a lane does, to the channel's local fake on loopback: `mock` (the baseline: the
mock platform siyu's demo uses), `webhook` (the signature-checking gateway), `telegram` (the
Bot API), `smtp` (aiosmtpd, security=none with AUTH, allowed on loopback) and `wecom`
(mode=app). Every fake runs in a process of its own (started with "spawn"), so neither its
CPU nor its GIL counts against the adapter; it is started afresh for every round, so each
round meets an empty fake. A round: 50 warm-up sends (not counted), then the timed sends,
with the wall time and the sending thread's CPU (`time.thread_time`), and the fake's CPU over
the same sends. Rounds alternate the channels (mock, webhook, ..., then again); the table
shows medians with min-max. A round's figure counts only when its fake accepted every send
and saw no repeat (`duplicate_attempts` 0): else the run fails (`BenchError`).

Messages are a Chinese course invitation of about 120 characters, different for each
recipient (a name and a tracking token), with distinct idempotency keys and recipients the
fakes know.
Every credential is a made-up value; nothing leaves the machine. `mock` is always measured:
it is the baseline. Prints a table; the last line is one JSON object. Asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script: make `bench._harness` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench._harness import BenchError, guarded, progress  # noqa: E402
from tests.support import smtp_server  # noqa: E402
from tests.support.gateway import running_gateway  # noqa: E402
from tests.support.mockplatform import duplicate_attempts, running_mock_platform  # noqa: E402
from tests.support.telegram_api import running_bot_api  # noqa: E402
from tests.support.wecom_api import running_wecom  # noqa: E402
from worker.channels.base import Channel, OutboundMessage  # noqa: E402
from worker.channels.registry import build_channel  # noqa: E402

CHANNELS = ("mock", "webhook", "telegram", "smtp", "wecom")
BASELINE = "mock"
WARMUP = 50
ACCOUNT = "bench"
START_TIMEOUT_S = 120.0  # a spawned child imports the fakes, the mock platform its own server
ANSWER_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
MARK, STOP = "mark", "stop"

# Made-up credentials, in the shapes the adapters check.
FAKE_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"FAKE siyu bench secret, not real").decode()
FAKE_BOT_TOKEN = "123456789:FAKE-bench-token-not-a-real-bot-000"
FAKE_WECOM_SECRET = "FAKE-wecom-app-secret-for-bench-only"
FAKE_AGENT_ID = 1000002

CAMPAIGN = "bench-course-invite"
SUBJECT = "《Python 数据分析入门》第 3 期开课通知"
NAMES = ("王小明", "李思雨", "张伟", "陈静", "刘洋", "杨帆", "赵敏", "黄磊")
TEMPLATE = (
    "{name}同学您好！《Python 数据分析入门》第 3 期 6 月 18 日晚 8 点开课，学员免费领取讲义。"
    "报名：https://edu.example.com/c/py-data?rt={rt} 回复“退订”不再接收。"
)
LIMITS = {
    "mock": "none here (--per-minute off)",
    "webhook": "your gateway's",
    "telegram": "~30/s per bot, 1/s per chat",
    "smtp": "your server's quota",
    "wecom": "per-app quota: members x 200/day",
}

Fake = Callable[[int, Path], AbstractContextManager[tuple[dict[str, Any], "Counts"]]]
Counts = Callable[[], tuple[int, int]]  # (messages accepted, duplicate_attempts)


def recipient(channel: str, i: int) -> str:
    """The i-th recipient of a round, one the channel's fake knows."""
    return {
        "mock": f"wx_{i:06d}",
        "webhook": f"+86138{i:08d}",
        "telegram": str(5_000_000_000 + i),  # a private chat's id is the user's id
        "smtp": f"learner{i:06d}@example.com",
        "wecom": f"xueyuan{i:06d}",  # a member's userid (WeCom lower-cases them)
    }[channel]


# --- the fakes, each entered in a child process -----------------------------------------


@contextmanager
def mock_fake(recipients: int, workdir: Path) -> Iterator[tuple[dict[str, Any], Counts]]:
    with running_mock_platform(workdir / "mock-platform.db") as url:

        def counts() -> tuple[int, int]:
            stats = httpx.get(f"{url}/v1/stats", timeout=60).json()
            accepted = sum(int(account["accepted"]) for account in stats.values())
            return accepted, duplicate_attempts(url)

        yield {"url": url}, counts


@contextmanager
def webhook_fake(recipients: int, workdir: Path) -> Iterator[tuple[dict[str, Any], Counts]]:
    with running_gateway(FAKE_WEBHOOK_SECRET) as gw:
        config = {"url": gw.url, "secret": FAKE_WEBHOOK_SECRET}
        yield config, lambda: (len(gw.stored), gw.duplicate_attempts)


@contextmanager
def telegram_fake(recipients: int, workdir: Path) -> Iterator[tuple[dict[str, Any], Counts]]:
    with running_bot_api(FAKE_BOT_TOKEN) as api:
        config = {"token": FAKE_BOT_TOKEN, "api_base": api.url}
        yield config, lambda: (len(api.accepted), api.duplicate_attempts)


@contextmanager
def smtp_fake(recipients: int, workdir: Path) -> Iterator[tuple[dict[str, Any], Counts]]:
    """Plain SMTP with AUTH: the fake's own test user, the channel allows it on loopback."""
    with smtp_server.running_mail_server(security="none", auth=True) as box:
        config = {
            "host": box.host, "port": box.port, "from": f"思语课堂 <{smtp_server.USER}>",
            "security": "none", "username": smtp_server.USER, "password": smtp_server.PASSWORD,
        }  # fmt: skip
        yield config, lambda: (len(box.accepted), box.duplicate_attempts)


@contextmanager
def wecom_fake(recipients: int, workdir: Path) -> Iterator[tuple[dict[str, Any], Counts]]:
    """A fresh corp id each time: the adapter's process keeps a token per (api base, corp id,
    secret), and a port may come round again."""
    corp_id = f"ww-FAKE-bench-{uuid.uuid4().hex[:8]}"
    users = {recipient("wecom", i) for i in range(recipients)}
    with running_wecom(
        corp_id=corp_id, secret=FAKE_WECOM_SECRET, agent_id=FAKE_AGENT_ID, users=users
    ) as api:
        config = {"corp_id": corp_id, "secret": FAKE_WECOM_SECRET,
                  "agent_id": FAKE_AGENT_ID, "mode": "app", "api_base": api.base}  # fmt: skip
        yield config, lambda: (len(api.messages), api.duplicate_attempts)


FAKES: dict[str, Fake] = {
    "mock": mock_fake,
    "webhook": webhook_fake,
    "telegram": telegram_fake,
    "smtp": smtp_fake,
    "wecom": wecom_fake,
}


def tune_fakes() -> None:
    """In the child: aiosmtpd's log warning about its own deprecated `login_data` at every
    AUTH is noise here."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)


def _unwind(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # through the fake's `with`: the mock platform is stopped


def _cpu_s() -> float:
    """CPU seconds of this process and its live children (the mock platform's server)."""
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def serve_fake(channel: str, recipients: int, workdir: str, conn: Connection) -> None:
    """The child: run the fake, send its adapter config; on MARK note the CPU, on STOP answer
    (accepted, duplicate_attempts, fake CPU seconds since MARK) and leave."""
    signal.signal(signal.SIGTERM, _unwind)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench process stops us on Ctrl-C
    tune_fakes()
    with FAKES[channel](recipients, Path(workdir)) as (config, counts):
        conn.send(config)
        marked = _cpu_s()
        while conn.recv() == MARK:
            marked = _cpu_s()
            conn.send(None)
        spent = _cpu_s() - marked
        conn.send((*counts(), spent))


# --- the bench process ------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    channel: str
    sends: int
    wall_s: float
    cpu_s: float  # the sending thread's
    fake_cpu_s: float

    @property
    def rate(self) -> float:
        return self.sends / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.sends * 1e6

    @property
    def fake_cpu_us(self) -> float:
        return self.fake_cpu_s / self.sends * 1e6


def messages(channel: str, round_no: int, count: int, subject: str | None) -> list[OutboundMessage]:
    """Rendered before the clock starts: rendering is not the channel's cost."""
    out = []
    for i in range(count):
        rt = hashlib.sha256(f"{channel}:{round_no}:{i}".encode()).hexdigest()[:16]
        text = TEMPLATE.format(name=NAMES[i % len(NAMES)], rt=rt)
        key = f"bench-{channel}-r{round_no}-{i:06d}"
        out.append(OutboundMessage(recipient(channel, i), text, key, CAMPAIGN, subject))
    return out


def receive(conn: Connection, child: BaseProcess, what: str, timeout_s: float) -> Any:
    """The child's next answer; a child that died or went quiet spoils the round."""
    deadline = time.monotonic() + timeout_s
    while not conn.poll(0.1):
        if not child.is_alive():
            raise BenchError(f"{child.name} exited ({child.exitcode}) before {what}; see above")
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name} gave no {what} within {timeout_s:.0f} s")
    return conn.recv()


def send_all(adapter: Channel, batch: list[OutboundMessage]) -> None:
    try:
        for message in batch:
            adapter.send(message)
    except Exception as exc:  # any failure spoils the figure; the error names no recipient
        raise BenchError(f"{adapter.scheme}: a send failed: {type(exc).__name__}: {exc}") from exc


def timed(adapter: Channel, batch: list[OutboundMessage]) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of sending `batch`."""
    wall, cpu = time.perf_counter(), time.thread_time()
    send_all(adapter, batch)
    return time.perf_counter() - wall, time.thread_time() - cpu


@contextmanager
def fake_process(
    channel: str, recipients: int, workdir: Path
) -> Iterator[tuple[Connection, BaseProcess]]:
    """The channel's fake in a spawned child; yields (our end of the pipe, the child). The
    child is stopped however the round ends."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(
        target=serve_fake, args=(channel, recipients, str(workdir), theirs),
        name=f"{channel} fake", daemon=True,
    )  # fmt: skip
    child.start()
    theirs.close()
    try:
        yield ours, child
        child.join(STOP_TIMEOUT_S)  # it answered STOP and is stopping its fake
    finally:
        if child.is_alive():  # a round cut short: the child unwinds on SIGTERM
            child.terminate()
            child.join(10)
        ours.close()


def measure(channel: str, n: int, round_no: int, tmp: Path) -> Round:
    """One round of one channel against a fresh fake; checked at the fake."""
    workdir = tmp / f"{channel}-r{round_no}"
    workdir.mkdir()
    with fake_process(channel, n + WARMUP, workdir) as (conn, child):
        config = receive(conn, child, "adapter config", START_TIMEOUT_S)
        adapter = build_channel(channel, ACCOUNT, config)
        batch = messages(channel, round_no, n + WARMUP, SUBJECT if adapter.has_subject else None)
        try:
            send_all(adapter, batch[:WARMUP])
            conn.send(MARK)
            receive(conn, child, "mark", ANSWER_TIMEOUT_S)
            wall_s, cpu_s = timed(adapter, batch[WARMUP:])
        finally:
            adapter.close()
        conn.send(STOP)
        accepted, repeats, fake_cpu_s = receive(conn, child, "counts", ANSWER_TIMEOUT_S)
    if accepted != n + WARMUP or repeats:
        raise BenchError(
            f"{channel} round {round_no}: the fake accepted {accepted:,} of {n + WARMUP:,} "
            f"sends with {repeats} duplicate attempts; no figure from a run that lost or "
            "repeated messages"
        )
    return Round(channel, n, wall_s, cpu_s, fake_cpu_s)


def run_all(channels: list[str], n: int, rounds: int, tmp: Path) -> list[Round]:
    """Every round, the channels alternating within each."""
    done = []
    for round_no in range(1, rounds + 1):
        for channel in channels:
            r = measure(channel, n, round_no, tmp)
            progress(
                f"round {round_no}/{rounds} {channel}: {r.rate:,.0f} msgs/s, "
                f"{r.cpu_us:,.0f} µs CPU/msg (fake {r.fake_cpu_us:,.0f} µs)"
            )
            done.append(r)
    return done


def summary(results: list[Round], channels: list[str]) -> dict[str, dict[str, float]]:
    by: dict[str, dict[str, float]] = {}
    for channel in channels:
        rs = [r for r in results if r.channel == channel]
        rates, cpus = [r.rate for r in rs], [r.cpu_us for r in rs]
        by[channel] = {
            "rate_median": statistics.median(rates), "rate_min": min(rates),
            "rate_max": max(rates), "cpu_us_median": statistics.median(cpus),
            "cpu_us_min": min(cpus), "cpu_us_max": max(cpus),
            "fake_cpu_us_median": statistics.median(r.fake_cpu_us for r in rs),
        }  # fmt: skip
    base = by[BASELINE]
    for figures in by.values():
        figures["rate_x_mock"] = figures["rate_median"] / base["rate_median"]
        figures["cpu_x_mock"] = figures["cpu_us_median"] / base["cpu_us_median"]
    return by


def report(by: dict[str, dict[str, float]], n: int, rounds: int, load: tuple[float, ...]) -> None:
    """The table, then the figures as one JSON line."""
    print(f"siyu channel adapters, one lane each: {n:,} sends x {rounds} rounds per channel")
    print(
        f"{os.cpu_count()} CPUs; load average {load[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; fakes in their own processes on loopback\n"
    )
    print(f"{'':<10}{'msgs/s per lane':>24}{'CPU µs/msg':>12}{'x mock':>14}{'fake µs':>10}"
          f"   platform limit (context)")  # fmt: skip
    print(f"{'channel':<10}{'median (min-max)':>24}{'median':>12}{'rate   CPU':>14}"
          f"{'/msg':>10}")  # fmt: skip
    for channel, f in by.items():
        spread = f"{f['rate_median']:,.0f} ({f['rate_min']:,.0f}-{f['rate_max']:,.0f})"
        times = f"{f['rate_x_mock']:.2f}  {f['cpu_x_mock']:.2f}"
        print(f"{channel:<10}{spread:>24}{f['cpu_us_median']:>12,.0f}{times:>14}"
              f"{f['fake_cpu_us_median']:>10,.0f}   {LIMITS[channel]}")  # fmt: skip
    print(
        "\nCPU µs/msg: the sending thread's CPU (user + system) per send; fake µs/msg: the "
        "fake's\nprocess over the same sends. On loopback a lane waits for the fake, so "
        "msgs/s is a ceiling\nset by adapter + fake + kernel, not a platform's figure."
    )
    rounded = {c: {k: round(v, 2) for k, v in f.items()} for c, f in by.items()}
    print(json.dumps({"n": n, "rounds": rounds, "warmup": WARMUP, "channels": rounded}))


def stop_fakes() -> None:
    """End the fake processes this run started (a round cut short by Ctrl-C or SIGTERM)."""
    for child in multiprocessing.active_children():
        child.terminate()
        with contextlib.suppress(Exception):
            child.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="timed sends per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", default="", help=f"comma list of {', '.join(CHANNELS)} (mock always runs)"
    )
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - set(CHANNELS)
    if unknown:
        parser.error(f"unknown channel(s) {', '.join(sorted(unknown))}; known: {CHANNELS}")
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    channels = [c for c in CHANNELS if not wanted or c in wanted or c == BASELINE]
    load = os.getloadavg()

    def run(tmp: Path) -> None:
        results = run_all(channels, args.n, args.rounds, tmp)
        report(summary(results, channels), args.n, args.rounds, load)

    guarded("siyu-bench-channels-", run, stop_fakes)


if __name__ == "__main__":
    main()
