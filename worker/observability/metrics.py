"""Prometheus metrics: `siyu api` serves them at `/metrics`, each worker on `--metrics-port`.

Two kinds, kept apart:
* database gauges (`DatabaseCollector`): deliveries by state, account and channel; lane lag;
  account state; inbound decisions. Read from the database at scrape time, so every process
  reports the same numbers; aggregate them across processes with `max`, not `sum`.
* process figures: how long this worker's lanes waited for their send slots
  (`LIMITER_WAIT`), and the process's CPU, memory and GC.

Each `siyu api` app and each worker builds its own `CollectorRegistry` (never the global
default one), so building many apps in one process registers nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from worker.errors import UserError
from worker.observability.dbstats import Snapshot, read_snapshot
from worker.store.models import AccountState, DeliveryState

log = logging.getLogger(__name__)

# Waits run from a few milliseconds (a busy account's next slot) to minutes (a daily cap).
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
LIMITER_WAIT = Histogram(
    "siyu_limiter_wait_seconds",
    "Seconds an account lane of this process slept until its next reserved send slot "
    "(one observation per wait).",
    ["account"],
    buckets=WAIT_BUCKETS,
    registry=None,
)
NO_ACCOUNT = ""  # the label of deliveries no account took (skipped: no reachable account)


class DatabaseCollector(Collector):
    """The database gauges, read once per scrape; a failed read is `siyu_database_up 0`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return ()  # registering must not query the database

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            snap = read_snapshot(self.engine)
        except SQLAlchemyError as exc:
            log.warning("metrics: the database could not be read: %s", type(exc).__name__)
            yield _gauge("siyu_database_up", "1 if the database gauges could be read.", 0)
            return
        yield _gauge("siyu_database_up", "1 if the database gauges could be read.", 1)
        yield _gauge(
            "siyu_database_read_seconds",
            "Seconds this scrape spent reading the database gauges.",
            time.perf_counter() - started,
        )
        yield from database_families(snap)


def database_families(snap: Snapshot) -> Iterator[Metric]:
    yield _deliveries(snap)
    yield _lane_lag(snap)
    yield _account_states(snap)
    yield from _inbound(snap)


def _deliveries(snap: Snapshot) -> Metric:
    family = GaugeMetricFamily(
        "siyu_deliveries",
        "Deliveries (campaign sends and replies) in the database, by state, sender account "
        "and channel; account and channel are empty for deliveries no account took.",
        labels=["state", "account", "channel"],
    )
    counts = dict(snap.deliveries)
    for account_id, row in snap.accounts.items():  # every state of every account, zeros too
        for state in DeliveryState:
            family.add_metric([state, row.name, row.channel], counts.pop((account_id, state), 0))
    unowned: Counter[str] = Counter()  # no account took them (or their account is gone)
    for (_, other_state), n in counts.items():
        unowned[other_state] += n
    for other_state, n in sorted(unowned.items()):
        family.add_metric([other_state, NO_ACCOUNT, NO_ACCOUNT], n)
    return family


def _lane_lag(snap: Snapshot) -> Metric:
    family = GaugeMetricFamily(
        "siyu_lane_lag_seconds",
        "Age of the account's oldest pending delivery (0: none pending). A paced campaign "
        "keeps this up to its planned length; growth past it means the lane falls behind.",
        labels=["account", "channel"],
    )
    for account_id, row in snap.accounts.items():
        family.add_metric([row.name, row.channel], snap.oldest_pending_s.get(account_id, 0.0))
    return family


def _account_states(snap: Snapshot) -> Metric:
    family = GaugeMetricFamily(
        "siyu_account_state",
        "1 for the state each sender account is in, 0 for the others.",
        labels=["account", "channel", "state"],
    )
    for row in snap.accounts.values():
        for state in AccountState:
            family.add_metric([row.name, row.channel, state], 1.0 if row.state == state else 0.0)
    return family


def _inbound(snap: Snapshot) -> Iterator[Metric]:
    decisions = GaugeMetricFamily(
        "siyu_inbound_decisions",
        "Inbound messages decided, by action (reply, handoff, opt_out), among the "
        "conversations kept (SIYU_CONVERSATION_RETENTION_DAYS).",
        labels=["action"],
    )
    for action, n in sorted(snap.decisions.items()):
        decisions.add_metric([action], n)
    yield decisions
    yield _gauge(
        "siyu_inbound_undecided", "Inbound messages waiting for a decision.", snap.undecided
    )


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)


def _with_process(registry: CollectorRegistry) -> CollectorRegistry:
    """The process's CPU, memory, file descriptors, GC and Python version too."""
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def api_registry(engine: Engine) -> CollectorRegistry:
    """What `siyu api` serves: the database gauges and the process's own figures."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(engine))
    return _with_process(registry)


def worker_registry(engine: Engine, *, database: bool = True) -> CollectorRegistry:
    """What a worker serves: its lanes' limiter waits, the process's figures, and (unless
    `database` is off) the database gauges."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LIMITER_WAIT)
    if database:
        registry.register(DatabaseCollector(engine))
    return _with_process(registry)


def serve(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Serve `registry` over HTTP on a daemon thread; a port in use is a `UserError`."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UserError(f"--metrics-port: cannot listen on {host}:{port}: {exc}") from exc
    return server
