"""`siyu doctor`: what is wrong with this installation, and how to fix it.

Each check reads and reports, one `Finding` per fact; none creates, starts or repairs
anything (an embedded Redis that is not running is reported, not started; a database file
that does not exist is not created). A check that needs what an earlier one found missing
(the database, Redis) is skipped or says so instead of failing with it.

    report.py    Finding, Report
    database.py  reachable, schema current, installation id
    services.py  Redis (version), live workers (heartbeats), the mock platform, the
                 inbound webhook secret
    files.py     rate-limit policies (each bad file), templates (each that does not compile)
"""

from __future__ import annotations

from sqlalchemy import Engine

from worker.config import Settings
from worker.dispatch.heartbeat import live_workers
from worker.runtime import Context
from worker.services.doctor.database import check_database
from worker.services.doctor.files import (
    check_account_channels,
    check_account_policies,
    check_policies,
    check_templates,
)
from worker.services.doctor.report import NO_WORKER, Finding, Report
from worker.services.doctor.services import (
    check_mock_platforms,
    check_redis,
    check_webhook_secret,
    check_workers,
)

__all__ = ["NO_WORKER", "Finding", "Report", "diagnose", "worker_warning"]


def diagnose(settings: Settings) -> Report:
    """Run every check against the configured installation."""
    findings: list[Finding] = []
    engine, schema_ok = check_database(settings, findings)
    client = check_redis(settings, findings)
    try:
        if client is None:
            message = "no worker is running (no Redis)"
            findings.append(Finding("workers", False, message, "start one with `siyu worker`"))
        elif engine is None:
            message = "cannot tell: worker heartbeats carry the database's installation id"
            findings.append(Finding("workers", False, message, "fix the database first"))
        else:
            findings.append(check_workers(Context(settings, engine, client)))
        policies = check_policies(settings.rate_limits_dir, findings)
        findings += check_templates(settings.templates_dir)
        findings.append(check_webhook_secret(settings))
        if engine is not None and schema_ok:
            findings += check_account_policies(engine, policies)
            findings += check_account_channels(engine)
            findings += check_mock_platforms(engine)
    finally:
        if client is not None:
            client.close()
        if engine is not None:
            engine.dispose()
    return Report(findings)


def worker_warning(settings: Settings, engine: Engine) -> str | None:
    """Why nothing would send a started campaign, or None when a worker is alive."""
    found: list[Finding] = []
    client = check_redis(settings, found)
    if client is None:
        return NO_WORKER if not settings.redis_url else f"{NO_WORKER} ({found[0].message})"
    try:
        return None if live_workers(Context(settings, engine, client)) else NO_WORKER
    finally:
        client.close()
