"""End to end on the `smtp` channel: two real `siyu worker` processes send a campaign to a real
SMTP server on loopback (aiosmtpd, AUTH on) through a refused mailbox and a 451 on the way;
every DATA attempt is counted there, so exactly-once is proven where receivers see it. Then a
recipient follows the unsubscribe link of the mail it got, and the next campaign skips it."""

from __future__ import annotations

import json
import re
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from tests.support.cli import siyu_on
from tests.support.cluster import running_workers, worker_env
from tests.support.serving import serving
from tests.support.smtp_server import PASSWORD, USER, MailServer, running_mail_server
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.api.app import create_app
from worker.campaigns.status import campaign_status
from worker.config import Settings
from worker.runtime import Context
from worker.store import tables

pytestmark = pytest.mark.slow
SECRET = "e2e-unsubscribe-secret-0f3a9c"
TEMPLATE = (
    "Subject: {{ contact.name }}，{{ course_name }} 开课啦\n\n"
    "{{ contact.name }}，你好：\n{{ course_name }} 开课啦：{{ track(course_url) }}"
)
CONTACTS = 20
REFUSED, LEAVING = "u000007@example.org", "u000003@example.org"
CT, D = tables.contacts.c, tables.deliveries.c


def states(ctx: Context, campaign: str) -> dict[str, tuple[str, str | None]]:
    """external_id -> (state, reason) of the campaign's latest run."""
    query = (
        select(CT.external_id, D.state, D.reason)
        .join(tables.contacts, CT.id == D.contact_id)
        .join(tables.campaign_runs, tables.campaign_runs.c.id == D.run_id)
        .join(tables.campaigns, tables.campaigns.c.id == tables.campaign_runs.c.campaign_id)
        .where(tables.campaigns.c.name == campaign)
    )
    with ctx.engine.connect() as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(query)}


def received_by(box: MailServer, run_part: str) -> Counter[str]:
    """How many accepted messages of one run (`-{run id}-` in the Message-ID) each address got."""
    return Counter(
        to for a in box.accepted.values() if run_part in a.message_id for to in a.rcpt_tos
    )


def first_mail_to(box: MailServer, address: str) -> EmailMessage:
    return next(a.message for a in box.accepted.values() if a.rcpt_tos == [address])


def test_a_mail_campaign_reaches_each_address_once_and_honours_unsubscribe(
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    (ctx.settings.templates_dir / "invite.j2").write_text(TEMPLATE, encoding="utf-8")
    add_contacts(ctx.engine, CONTACTS, channel="smtp")
    with ctx.engine.begin() as conn:
        conn.execute(update(tables.contacts).values(external_id=CT.external_id + "@example.org"))
    api_app = create_app(Settings(unsubscribe_secret=SECRET), ctx.engine)
    with running_mail_server(auth=True) as box, serving(api_app) as api_url:
        box.refuse(REFUSED)
        box.then("data", "451 4.3.0 Error: queue file write error")
        add_accounts(
            ctx.engine, ["mail1", "mail2"], channel="smtp", host=box.host, port=str(box.port),
            security="none", username=USER, password=PASSWORD, timeout_s="5",
            **{"from": "思语课堂 <courses@example.com>"},
        )  # fmt: skip
        add_campaign(ctx, "c1", ["mail1", "mail2"])
        env = worker_env(
            ctx, db_url, redis_url, {"smtp": "[account]\n"},
            SIYU_LANE_LEASE_MS="4000", SIYU_TICK_INTERVAL_S="1",
            SIYU_PUBLIC_URL=api_url, SIYU_UNSUBSCRIBE_SECRET=SECRET,
        )  # fmt: skip
        with running_workers(env, tmp_path, log_level="INFO") as workers:
            run1 = start(ctx, "c1")
            workers.await_completed(ctx, "c1", 120)
            first = dict(box.accepted)
            assert box.duplicate_attempts == 0, "no Message-ID was accepted twice"
            assert len(box.attempts) == CONTACTS, "19 accepted, the 451 tried once more"
            tries = Counter(a.message_id for a in box.attempts).most_common()
            assert [n for _, n in tries[:2]] == [2, 1], "the 451 retried as the same message"
            link = re.search(r"<(http[^>]+)>", str(first_mail_to(box, LEAVING)["List-Unsubscribe"]))
            assert link is not None and link[1].startswith(f"{api_url}/u/")
            answer = httpx.post(link[1], content=b"List-Unsubscribe=One-Click")
            assert answer.status_code == 200
            add_campaign(ctx, "c2", ["mail1", "mail2"])
            run2 = start(ctx, "c2")
            workers.await_completed(ctx, "c2", 120)
    everyone = {f"u{i:06d}@example.org" for i in range(1, CONTACTS + 1)}
    assert received_by(box, f"-{run1.id}-") == Counter(everyone - {REFUSED})
    assert len({a.message_id for a in first.values()}) == len(first) == CONTACTS - 1
    assert all(a.user == USER for a in box.attempts)
    for attempt in first.values():
        [to] = attempt.rcpt_tos
        number = int(to[1:7])
        assert attempt.message["Subject"] == f"学员{number}，Python 入门 开课啦"
        assert attempt.message_id.endswith("@example.com>")
    c1 = states(ctx, "c1")
    assert c1[REFUSED] == ("failed", "recipient_unreachable")
    assert Counter(state for state, _ in c1.values()) == {"sent": CONTACTS - 1, "failed": 1}
    assert received_by(box, f"-{run2.id}-") == Counter(everyone - {REFUSED, LEAVING})
    assert states(ctx, "c2")[LEAVING] == ("skipped", "unsubscribed")
    assert box.duplicate_attempts == 0
    assert campaign_status(ctx.engine, "c2")["counts"]["sent"] == CONTACTS - 2
    with siyu_on(db_url, monkeypatch, capsys) as siyu:
        listed = siyu("accounts", "list", "--json")
    assert listed.code == 0 and {a["name"] for a in json.loads(listed.stdout)} == {"mail1", "mail2"}
    logs = workers.logs(tail=None)
    assert logs.strip(), "the workers' whole logs were read"
    for where in (logs, listed.stdout, listed.stderr):
        assert PASSWORD not in where
    ctx.engine.dispose()
