"""The operator API and console under load: campaign status and the dashboard, by deliveries.

    .venv/bin/python bench/api.py [--sizes 10000,100000,1000000] [--requests 300]
        [--clients 4] [--campaigns 10]

For each size N: a fresh PostgreSQL database (`siyu_bench_api`) holding ten running
campaigns whose runs have N deliveries between them (sent over the last hour, pending,
failed, skipped, over five accounts), written by SQL as the workers would leave them (the
tallies' triggers count them, as they count the workers' writes, and a fold adds the
counts up as the workers' tick does); then a real `siyu api`
(uvicorn, with `SIYU_API_TOKEN`) on loopback, and from this process:

* `GET /healthz` (one `SELECT 1`): the floor any request pays, measured in the same run;
* `GET /v1/campaigns/{name}/status` with the bearer token;
* `GET /` the dashboard, signed in through the console's form (cookie + CSRF);
* for reference, what the status counts would cost by counting the run's rows (the query
  status ran before the tallies), timed in the database.

Each route: `--requests` one after another on one keep-alive connection (p50, p95, max),
then `--clients` threads at once for requests/s. Goals (issue 12): status p95 under 20 ms and
dashboard p95 under 100 ms on this 2-core machine, neither growing with N. Prints a table,
then one JSON object as the last line.
"""

# ruff: noqa: S608  (SQL built from this file's constants; no input reaches it)
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script: make `bench._harness` importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from bench._harness import PG, BenchError, admin_sql, guarded, progress  # noqa: E402
from bench._observe import free_ports  # noqa: E402
from worker.campaigns.lifecycle import CampaignSpec, create_campaign  # noqa: E402
from worker.campaigns.transitions import begin_run, open_run  # noqa: E402
from worker.services.accounts import add_account  # noqa: E402
from worker.services.segments import add_segment  # noqa: E402
from worker.store.db import init_db, make_engine  # noqa: E402
from worker.store.tallies import fold  # noqa: E402

DB_NAME = "siyu_bench_api"
DB_URL = f"{PG}/{DB_NAME}"
TOKEN = "bench-token-0123456789abcdef"
ACCOUNTS = 5
GOALS_MS = {"status": 20.0, "dashboard": 100.0}
# Where each of a run's deliveries is (per 20 rows): sent over the last hour, pending, failed,
# skipped; the same shape at every size.
SHAPE = "CASE WHEN g % 20 < 12 THEN 'sent' WHEN g % 20 < 18 THEN 'pending' " \
        "WHEN g % 20 = 18 THEN 'failed' ELSE 'skipped' END"  # fmt: skip


def recreate_database() -> None:
    admin_sql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DB_NAME}'",
        f"DROP DATABASE IF EXISTS {DB_NAME}",
        f"CREATE DATABASE {DB_NAME}",
    )


def seed(engine: Engine, templates: Path, deliveries: int, campaigns: int) -> list[str]:
    """`campaigns` running campaigns whose runs hold `deliveries` rows between them."""
    per_run = max(1, deliveries // campaigns)
    names = [f"bench_{i:02d}" for i in range(campaigns)]
    accounts = [f"assistant_{i:02d}" for i in range(1, ACCOUNTS + 1)]
    for name in accounts:
        add_account(engine, name, "memory")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (channel, external_id, name, tags, attrs, created_at, "
                "updated_at) SELECT 'memory', 'u' || g, '学员' || g, '[\"python\"]', '{}', "
                "now(), now() FROM generate_series(1, :n) AS g"
            ),
            {"n": per_run},
        )
    add_segment(engine, "everyone", "tag = python")
    for name in names:
        spec = CampaignSpec(name=name, segment="everyone", template="invite", accounts=accounts)
        create_campaign(engine, templates, spec)
        run_id = open_run(engine, name, None, None)
        if not begin_run(engine, run_id):
            raise BenchError(f"could not begin the run of {name}")
        with engine.begin() as conn:
            conn.execute(text(DELIVERIES), {"run": run_id, "n": per_run})
            conn.execute(
                text("UPDATE campaign_runs SET materialised = true, materialised_upto = :n, "
                     "expected_total = :n WHERE id = :run"),
                {"run": run_id, "n": per_run},
            )  # fmt: skip
    fold(engine)  # as the workers' tick would have
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return names


DELIVERIES = f"""
INSERT INTO deliveries (run_id, contact_id, account_id, state, attempts, created_at,
                        updated_at, sent_at)
SELECT :run, c.id, a.id, s.state, 1, now() AT TIME ZONE 'utc' - interval '1 hour',
       now() AT TIME ZONE 'utc',
       CASE WHEN s.state = 'sent'
            THEN now() AT TIME ZONE 'utc' - (c.id % 3600) * interval '1 second' END
FROM generate_series(1, :n) AS g
JOIN contacts AS c ON c.external_id = 'u' || g
JOIN accounts AS a ON a.name = 'assistant_0' || (1 + g % {ACCOUNTS})
CROSS JOIN LATERAL (SELECT {SHAPE} AS state) AS s
"""


@contextmanager
def api_process(tmp: Path, templates: Path) -> Iterator[str]:
    port = free_ports(1)[0]
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": DB_URL,
        "SIYU_REDIS_URL": "redis://127.0.0.1:6379/13",
        "SIYU_API_TOKEN": TOKEN,
        "SIYU_TEMPLATES_DIR": str(templates),
        "SIYU_STATE_DIR": str(tmp / ".siyu"),
        "SIYU_LOG_LEVEL": "WARNING",
    }
    log = (tmp / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "api", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchError(f"siyu api exited (code {proc.returncode}); see {tmp}/api.log")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("siyu api did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def signed_in(base: str) -> httpx.Client:
    """A client holding a console session (the sign-in form, its CSRF field, the token)."""
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/signin").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    if found is None:
        raise BenchError("the sign-in form has no CSRF field")
    answer = client.post("/signin", data={"token": TOKEN, "csrf": found.group(1), "next": "/"})
    if answer.status_code >= 400 or client.get("/").status_code != 200:
        raise BenchError(f"could not sign in to the console ({answer.status_code})")
    return client


def timed(get: Callable[[], httpx.Response], requests: int) -> list[float]:
    """Seconds of each of `requests` calls, after a few to warm up; any non-200 fails."""
    for _ in range(5):
        get()
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        response = get()
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(
                f"{response.request.url}: {response.status_code} {response.text[:200]}"
            )
    return seconds


def throughput(
    make: Callable[[], Callable[[], httpx.Response]], clients: int, requests: int
) -> float:
    """Requests/s with `clients` threads, each with its own connection, sharing `requests`."""
    share = max(1, requests // clients)
    errors: list[str] = []

    def run() -> None:
        get = make()
        for _ in range(share):
            if (status := get().status_code) != 200:
                errors.append(str(status))

    threads = [threading.Thread(target=run) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError(f"{len(errors)} requests failed under load: {errors[:3]}")
    return share * clients / (time.perf_counter() - started)


def figures(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def counting_ms(engine: Engine, run_name: str, repeats: int = 5) -> float:
    """The status counts as they were read before the tallies: a GROUP BY over the run."""
    query = text(
        "SELECT d.state, count(*) FROM deliveries d JOIN campaign_runs r ON r.id = d.run_id "
        "JOIN campaigns c ON c.id = r.campaign_id WHERE c.name = :name GROUP BY d.state"
    )
    best = []
    with engine.connect() as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(query, {"name": run_name}).all()
            best.append(time.perf_counter() - started)
    return round(statistics.median(best) * 1000, 2)


def measure(tmp: Path, size: int, opts: argparse.Namespace) -> dict[str, Any]:
    recreate_database()
    templates = tmp / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "invite.j2").write_text("{{ contact.name }}，开课啦", encoding="utf-8")
    engine = make_engine(DB_URL)
    try:
        init_db(engine)
        started = time.monotonic()
        names = seed(engine, templates, size, opts.campaigns)
        progress(f"{size:,} deliveries written in {time.monotonic() - started:.1f} s")
        out: dict[str, Any] = {"deliveries": size, "counting_ms": counting_ms(engine, names[0])}
        with api_process(tmp, templates) as base:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            api = httpx.Client(base_url=base, headers=bearer, timeout=30)
            console = signed_in(base)
            status_path = f"/v1/campaigns/{names[0]}/status"
            if api.get(status_path).json().get("total") != size // opts.campaigns:
                raise BenchError(f"{status_path} does not count the run's deliveries")
            makers: dict[str, Callable[[], Callable[[], httpx.Response]]] = {
                "healthz": lambda: _getter(base, "/healthz"),
                "status": lambda: _getter(base, status_path, headers=bearer),
                "dashboard": lambda: _getter(base, "/", cookies=console.cookies),
            }
            for route, make in makers.items():
                out[route] = figures(timed(make(), opts.requests))
                out[route]["rps"] = round(throughput(make, opts.clients, opts.requests), 1)
                progress(f"{size:,}: {route} {out[route]}")
            api.close()
            console.close()
        return out
    finally:
        engine.dispose()


def _getter(base: str, path: str, **client_args: Any) -> Callable[[], httpx.Response]:
    client = httpx.Client(base_url=base, timeout=30, **client_args)
    return lambda: client.get(path)


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    print(
        f"\n{'deliveries':>12} {'route':>10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'req/s':>8}"
    )
    for r in results:
        for route in ("healthz", "status", "dashboard"):
            f = r[route]
            print(f"{r['deliveries']:>12,} {route:>10} {f['p50_ms']:>8} {f['p95_ms']:>8} "
                  f"{f['max_ms']:>8} {f['rps']:>8}")  # fmt: skip
        counting = f"{r['counting_ms']:>8}   (the run's GROUP BY, in the database)"
        print(f"{'':>12} {'counting':>10} {counting}")
    worst = {route: max(r[route]["p95_ms"] for r in results) for route in GOALS_MS}
    smallest, largest = results[0], results[-1]
    growth = {
        route: round(largest[route]["p95_ms"] / max(smallest[route]["p95_ms"], 0.01), 2)
        for route in GOALS_MS
    }
    ok = all(worst[route] < goal for route, goal in GOALS_MS.items())
    for route, goal in GOALS_MS.items():
        verdict = "ok" if worst[route] < goal else "ABOVE GOAL"
        sizes = f"{largest['deliveries']:,} / at {smallest['deliveries']:,}"
        print(f"{route}: worst p95 {worst[route]} ms (goal < {goal:.0f} ms: {verdict}); "
              f"p95 at {sizes}: x{growth[route]}")  # fmt: skip
    return {"sizes": results, "worst_p95_ms": worst, "p95_growth": growth, "goals_met": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--campaigns", type=int, default=10)
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]

    def run(tmp: Path) -> None:
        results = [measure(tmp, size, opts) for size in sizes]
        print(json.dumps(report(results)))

    guarded("siyu-bench-api-", run, lambda: admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME}"))


if __name__ == "__main__":
    main()
