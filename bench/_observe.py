"""The throughput benchmark with observability on: metrics served and scraped, JSON logs.

`--observed` gives every worker a `--metrics-port` and `SIYU_LOG_FORMAT=json`, and a
`Scraper` reads each worker's /metrics and the database gauges every `SCRAPE_S` while the
clock runs, as the deployment in the README does (workers with `--no-metrics-db`, the
database gauges from one place). The scraper is a process of its own, as Prometheus and
`siyu api` are: run as a thread of the benchmark it took the GIL from the timed
`start_campaign`, and its database reads were left out of the DB CPU figure.

    python -m bench._observe --ports P1,P2 --interval-s S --database-url URL --out FILE

scrapes until SIGTERM, then reads the database gauges once more and writes its figures
(`ScrapeFigures`) to FILE as JSON.
`--compare-observed N` runs the siyu phase N times each way, alternating, and compares the
medians.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SCRAPE_S = 5.0  # default: three times as often as the usual Prometheus interval (15 s)
JSON_LOGS = {"SIYU_LOG_FORMAT": "json"}


def free_ports(count: int) -> list[int]:
    """Ports free now on loopback (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def metrics_args(ports: Sequence[int]) -> list[list[str]]:
    return [["--metrics-port", str(port), "--no-metrics-db"] for port in ports]


class Scraper(threading.Thread):
    """Every `interval_s`, as a Prometheus would in the deployment the README recommends:
    each worker's own /metrics (served with `--no-metrics-db`), and the database gauges
    once, from a registry built as `siyu api` builds its own."""

    def __init__(
        self, ports: Sequence[int], database: CollectorRegistry, interval_s: float = SCRAPE_S
    ) -> None:
        super().__init__(name="scraper", daemon=True)
        self.interval_s = interval_s
        self.urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
        self.database = database
        self.scrapes = 0
        self.failures = 0
        self.last_sent = 0.0  # siyu_deliveries{state="sent"} in the last database scrape
        self.db_read_s: list[float] = []  # siyu_database_read_seconds of every one
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            for url in self.urls:
                self.scrape_worker(url)
            self.scrape_database()

    def scrape_worker(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
                samples(response.read().decode())
        except OSError:
            self.failures += 1
            return
        self.scrapes += 1

    def scrape_database(self) -> None:
        found = samples(generate_latest(self.database).decode())
        self.last_sent = sum(
            s.value for s in found if s.name == "siyu_deliveries" and s.labels["state"] == "sent"
        )
        self.db_read_s += [s.value for s in found if s.name == "siyu_database_read_seconds"]

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class ScrapeFigures:
    scrapes: int = 0  # worker scrapes that worked
    failures: int = 0
    last_sent: float = 0.0  # siyu_deliveries{state="sent"} in the last database scrape
    db_read_s: list[float] = field(default_factory=list)


class ScraperProcess:
    """`Scraper` in a process of its own (see the module docstring)."""

    def __init__(self, ports: Sequence[int], database_url: str, interval_s: float, out: Path):
        self.out = out
        self.command = [
            sys.executable, "-m", "bench._observe", "--ports", ",".join(map(str, ports)),
            "--interval-s", str(interval_s), "--database-url", database_url, "--out", str(out),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.figures: ScrapeFigures | None = None

    def start(self, cwd: Path) -> None:
        """Start it and wait until it is ready (imports done, first scrape due in
        `interval_s`), so that its start-up stays out of the timed window."""
        self.proc = subprocess.Popen(self.command, cwd=cwd, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            self.kill()
            raise RuntimeError(f"the scraper did not start (code {self.proc.returncode})")

    def stop(self) -> ScrapeFigures:
        """Stop it (once) and read what it saw."""
        if self.figures is None:
            if self.proc is None:
                raise RuntimeError("the scraper was never started")
            self.proc.send_signal(signal.SIGTERM)
            if self.proc.wait(timeout=60) != 0:
                raise RuntimeError(f"the scraper exited with code {self.proc.returncode}")
            self.figures = ScrapeFigures(**json.loads(self.out.read_text()))
        return self.figures

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _scrape_until_terminated(args: argparse.Namespace) -> None:
    from sqlalchemy import create_engine

    from worker.observability.metrics import api_registry

    # Counted in the DB CPU figure: these are the reads `siyu api` makes for Prometheus.
    engine = create_engine(f"{args.database_url}?application_name=siyu-api")
    ports = [int(p) for p in args.ports.split(",")]
    scraper = Scraper(ports, api_registry(engine), args.interval_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scraper.start()
    print("ready", flush=True)
    stop.wait()
    scraper.stop()
    scraper.scrape_database()
    figures = ScrapeFigures(scraper.scrapes, scraper.failures, scraper.last_sent, scraper.db_read_s)
    Path(args.out).write_text(json.dumps(asdict(figures)))
    engine.dispose()


def samples(text: str) -> list[Sample]:
    """Parse an exposition as Prometheus would (a malformed one raises)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def comparison(
    plain: Sequence[tuple[float, float, float]], observed: Sequence[tuple[float, float, float]]
) -> dict[str, Any]:
    """Medians of the two series of (rate, worker CPU µs, DB CPU µs per delivery) and how far
    apart they are; on a shared machine the CPU figures are steadier than the rates."""
    out: dict[str, Any] = {}
    for i, name in enumerate(("rate", "worker_cpu_us", "db_cpu_us")):
        a = statistics.median(run[i] for run in plain)
        b = statistics.median(run[i] for run in observed)
        out[f"{name}_plain_median"] = round(a, 1)
        out[f"{name}_observed_median"] = round(b, 1)
        out[f"{name}_observed_vs_plain"] = round(b / a - 1, 4)
        out[f"{name}_plain"] = [round(run[i], 1) for run in plain]
        out[f"{name}_observed"] = [round(run[i], 1) for run in observed]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench._observe")
    parser.add_argument("--ports", required=True, help="the workers' metrics ports, a,b,c")
    parser.add_argument("--interval-s", type=float, default=SCRAPE_S)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--out", required=True, help="where to write the figures (JSON)")
    _scrape_until_terminated(parser.parse_args())
