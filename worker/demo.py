"""`siyu demo`: seed contacts, start the mock platform, `siyu api` and workers, run a campaign,
let three learners write back (a question, a request for a person, an opt-out), summarise.

Everything runs on the embedded default (a fresh SQLite file and an embedded Redis under
`./.siyu/demo/`). Every child process is started with a parent-death signal and stopped in
order on exit, Ctrl-C included, so nothing is left behind.
"""

from __future__ import annotations

import csv
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from worker.errors import ServiceUnavailable
from worker.runtime import procs
from worker.runtime.embedded import EmbeddedRedis
from worker.webhooks import new_secret

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "婷",
    "涛",
    "明",
    "超",
    "霞",
]
CITIES = ["上海", "北京", "深圳", "杭州", "成都", "广州", "武汉", "南京"]
TAGS = ["python", "data", "ai", "frontend", "refunded", "vip"]
SEGMENT = "tag = python or tag = data or tag = ai"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_contacts(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)  # noqa: S311  (sample data, reproducible by design)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["external_id", "name", "tags", "city", "level", "signup_date"])
        for i in range(1, count + 1):
            name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
            tags = ";".join(rng.sample(TAGS, k=rng.randint(1, 3)))
            out.writerow(
                [
                    f"wx_{i:07d}",
                    name,
                    tags,
                    rng.choice(CITIES),
                    rng.randint(1, 5),
                    f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                ]
            )


class _Interrupted(Exception):
    pass


_interrupted = threading.Event()


def _on_signal(_sig: int, _frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: remember it, then raise. The raise alone is not enough: Python runs
    the handler at whatever bytecode the main thread is on, and when that is a garbage
    collector's callback (SQLAlchemy has some) the exception is printed and dropped. The
    demo's waiting loops check the flag, so a dropped raise still stops the demo."""
    _interrupted.set()
    raise _Interrupted


def _stop_if_interrupted() -> None:
    if _interrupted.is_set():
        raise _Interrupted


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], what: str = "the mock platform", timeout_s: float = 20
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _stop_if_interrupted()
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited at start-up (code {proc.returncode})")
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise ServiceUnavailable(f"{what} did not answer at {url}")


def run_demo(*, contacts: int, workers: int, accounts: int) -> None:
    from worker.cli.common import console

    _interrupted.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    home = Path(".siyu/demo").resolve()
    try:
        with ExitStack() as stack:
            summary = _run(stack, home, contacts, workers, accounts)
        _stop_if_interrupted()
        _print_summary(summary)
    except (KeyboardInterrupt, _Interrupted):
        console.print("[yellow]demo interrupted; every process it started has been stopped[/]")
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    stack: ExitStack, home: Path, contacts: int, workers: int, accounts: int
) -> dict[str, Any]:
    from worker.cli.common import say

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    redis_server = EmbeddedRedis(home)
    redis_url = redis_server.start()
    stack.callback(redis_server.stop)
    env = {
        "SIYU_DATABASE_URL": f"sqlite:///{home / 'siyu-demo.db'}",
        "SIYU_REDIS_URL": redis_url,
        "SIYU_STATE_DIR": str(home),
        "SIYU_WEBHOOK_SECRET": new_secret(),
        "SIYU_REPLY_DELAY_MIN_S": "1",  # human-like, kept short for a demo
        "SIYU_REPLY_DELAY_MAX_S": "3",
    }
    port, api_port = free_port(), free_port()
    platform = procs.spawn(
        [
            sys.executable,
            "-m",
            "worker.mockplatform",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(home / "mock-platform.db"),
            "--inbound-url",
            f"http://127.0.0.1:{api_port}/v1/inbound/mock",
        ],
        env=env,
        log=home / "mock-platform.log",
    )
    stack.callback(procs.stop, platform)
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/v1/stats", platform)
    say(f"mock platform on {base}; embedded Redis at {redis_url}")

    ctx = _seed(home, env, base, contacts, accounts)
    _stop_if_interrupted()
    api = procs.spawn(
        [sys.executable, "-m", "worker", "api", "--port", str(api_port)],
        env=env,
        log=home / "api.log",
    )
    stack.callback(procs.stop, api, timeout_s=20)
    _wait_http(f"http://127.0.0.1:{api_port}/healthz", api, "siyu api")
    started = time.monotonic()
    for i in range(workers):
        proc = procs.spawn(
            [sys.executable, "-m", "worker", "worker", "--concurrency", "8"],
            env=env,
            log=home / f"worker-{i}.log",
        )
        stack.callback(procs.stop, proc, timeout_s=20)
    from worker.campaigns.lifecycle import start_campaign
    from worker.campaigns.status import campaign_status
    from worker.cli.progress import watch_status

    def status() -> dict[str, Any]:
        _stop_if_interrupted()
        return campaign_status(ctx.engine, "demo_course_invite")

    start_campaign(ctx, "demo_course_invite")
    doc = watch_status(status)
    duration = time.monotonic() - started
    replies = _converse(ctx, base)
    stats = httpx.get(f"{base}/v1/stats", timeout=5).json()
    return {
        "status": doc,
        "duration_s": duration,
        "platform": stats,
        "contacts": contacts,
        "replies": replies,
    }


LEARNERS_SAY = ("早鸟价多少钱？", "转人工", "退订")


def _converse(ctx: Any, base: str, timeout_s: float = 60) -> dict[str, int]:
    """Three learners the campaign reached write back to the account that wrote to them,
    through the platform's signed webhook; wait until every answer is on the platform."""
    from sqlalchemy import func, select

    from worker.cli.common import say
    from worker.store import tables

    D, CT, A, M = tables.deliveries.c, tables.contacts.c, tables.accounts.c, tables.messages.c
    reached = (
        select(CT.external_id, A.name)
        .select_from(tables.deliveries)
        .join(tables.contacts, CT.id == D.contact_id)
        .join(tables.accounts, A.id == D.account_id)
        .where(D.state == "sent", D.run_id.is_not(None))
        .order_by(D.id)
        .limit(len(LEARNERS_SAY))
    )
    with ctx.engine.connect() as conn:
        learners = conn.execute(reached).all()
    for (learner, account), text in zip(learners, LEARNERS_SAY, strict=False):
        said = {"account": account, "from": learner, "text": text}
        httpx.post(f"{base}/v1/simulate/inbound", json=said, timeout=10).raise_for_status()
    say(f"{len(learners)} learners wrote back: {' / '.join(LEARNERS_SAY[: len(learners)])}")
    counts = select(M.action, func.count()).where(M.inbound.is_(True)).group_by(M.action)
    answers = select(D.state, func.count()).where(D.message_id.is_not(None)).group_by(D.state)
    deadline = time.monotonic() + timeout_s
    while True:
        _stop_if_interrupted()
        with ctx.engine.connect() as conn:
            decided = {str(k): n for k, n in conn.execute(counts).all()}
            delivered = {str(k): n for k, n in conn.execute(answers).all()}
        settled = "None" not in decided and sum(decided.values()) >= len(learners)
        if settled and sum(delivered.values()) == delivered.get("sent", 0):
            break
        if time.monotonic() > deadline:
            say("some replies were still on their way when the demo stopped")
            break
        time.sleep(0.2)
    return {
        **{f"decided_{k}": n for k, n in decided.items()},
        "replies_sent": delivered.get("sent", 0),
    }


def _seed(home: Path, env: dict[str, str], base: str, contacts: int, accounts: int) -> Any:
    """Fresh schema, accounts, contacts (imported from CSV), segment and campaign."""
    from worker.audience.importer import import_contacts
    from worker.campaigns.lifecycle import CampaignSpec, create_campaign
    from worker.cli.common import say
    from worker.config import Settings
    from worker.runtime import Context, connect_redis, set_context
    from worker.runtime.celery_app import configure_celery
    from worker.services.accounts import add_account
    from worker.services.segments import add_segment
    from worker.store.db import init_db, make_engine

    settings = Settings(
        database_url=env["SIYU_DATABASE_URL"], redis_url=env["SIYU_REDIS_URL"], state_dir=home
    )
    engine = make_engine(settings.database_url)
    init_db(engine)
    ctx = Context(settings=settings, engine=engine, redis=connect_redis(settings.redis_url or ""))
    configure_celery(env["SIYU_REDIS_URL"], visibility_timeout_s=300)
    set_context(ctx)
    names = [f"assistant_{i + 1:02d}" for i in range(accounts)]
    for name in names:
        add_account(
            engine,
            name,
            "mock",
            policy="demo",
            config={"url": base},
            rate_limits_dir=settings.rate_limits_dir,
        )
    csv_path = home / "contacts.csv"
    write_contacts(csv_path, contacts)
    report = import_contacts(engine, csv_path, "mock")
    say(f"imported {report.created} contacts from {csv_path}")
    add_segment(
        engine, "demo_learners", SEGMENT, allow_unknown=True
    )  # few contacts: a tag may be missing
    create_campaign(
        engine,
        settings.templates_dir,
        CampaignSpec(
            name="demo_course_invite",
            segment="demo_learners",
            template="course_invite",
            accounts=names,
            variables={
                "course_name": "Python 数据分析实战营",
                "course_url": "https://edu.example.com/courses/python-data",
                "group_url": "https://work.weixin.qq.com/gm/demo-group",
            },
        ),
    )
    return ctx


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from worker.cli.common import console

    doc = summary["status"]
    counts = doc["counts"]
    rate = counts["sent"] / summary["duration_s"] if summary["duration_s"] > 0 else 0.0
    table = Table("", "value", title="siyu demo summary")
    for key in ("sent", "skipped", "failed", "unknown", "pending"):
        table.add_row(key, f"{counts[key]:,}")
    table.add_row("segment members", f"{doc['total']:,}")
    table.add_row("duration", f"{summary['duration_s']:.1f} s")
    table.add_row("messages/s", f"{rate:,.0f}")
    accepted = sum(a.get("accepted", 0) for a in summary["platform"].values())
    dupes = sum(a.get("duplicate_attempts", 0) for a in summary["platform"].values())
    table.add_row("platform accepted", f"{accepted:,} ({dupes} duplicate attempts)")
    replies = summary["replies"]
    decided = ", ".join(
        f"{replies.get(f'decided_{action}', 0)} {label}"
        for action, label in (
            ("reply", "answered"),
            ("handoff", "to a person"),
            ("opt_out", "opted out"),
        )
    )
    table.add_row("learners who wrote back", decided)
    table.add_row("replies on the platform", f"{replies['replies_sent']}")
    console.print(table)
