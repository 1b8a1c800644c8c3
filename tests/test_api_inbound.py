"""`POST /v1/inbound/{channel}`: signed by Standard Webhooks, stored once, refused clearly.

The API runs over real HTTP (uvicorn on loopback) against SQLite and PostgreSQL; the mock
platform runs as its own process and signs what it delivers with the same secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tests.support.mockplatform import running_mock_platform
from tests.support.serving import serving
from tests.support.world import add_accounts, add_contacts
from worker.api.app import create_app
from worker.config import Settings
from worker.replies.inbound import MAX_TEXT, Stored
from worker.store import tables
from worker.store.db import init_db, make_engine
from worker.webhooks import new_secret, signed_headers

M, CV, CT = tables.messages.c, tables.conversations.c, tables.contacts.c
SECRET = new_secret()


@dataclass
class Api:
    url: str
    engine: Engine
    stored: list[Stored] = field(default_factory=list)

    def post(
        self, document: object, *, secret: str | None = SECRET, channel: str = "mock",
        message_id: str = "in-1", when: datetime | None = None, raw: bytes | None = None,
    ) -> httpx.Response:  # fmt: skip
        body = raw if raw is not None else json.dumps(document, ensure_ascii=False).encode()
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers |= signed_headers(secret, message_id, when or datetime.now(UTC), body)
        return httpx.post(f"{self.url}/v1/inbound/{channel}", content=body, headers=headers)

    def messages(self) -> list[tuple[str, str, bool]]:
        """(provider message id, text, inbound) of every stored message."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(M.provider_message_id, M.text, M.inbound).order_by(M.id)
            ).all()
        return [(r[0], r[1], r[2]) for r in rows]


def payload(text: str = "多少钱?", sender: str = "u000001", **extra: object) -> dict[str, object]:
    return {"message_id": "in-1", "account": "a1", "from": sender, "text": text, **extra}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    init_db(eng)
    add_accounts(eng, ["a1"], channel="mock", url="http://127.0.0.1:9")
    add_contacts(eng, 2, channel="mock")
    yield eng
    eng.dispose()


def running_api(engine: Engine, secret: str | None) -> Iterator[Api]:
    api = Api("", engine)
    app = create_app(Settings(webhook_secret=secret), engine, on_stored=api.stored.append)
    with serving(app) as url:
        api.url = url
        yield api


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    yield from running_api(engine, SECRET)


def test_a_signed_message_is_stored_in_its_conversation(api: Api) -> None:
    answer = api.post(payload(sent_at="2026-12-04T20:00:05+08:00"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicate"] is False
    with api.engine.connect() as conn:
        row = conn.execute(
            select(M.text, M.author, M.provider_sent_at, CV.status, CT.external_id)
            .join(tables.conversations, CV.id == M.conversation_id)
            .join(tables.contacts, CT.id == CV.contact_id)
        ).one()
    assert tuple(row) == (
        "多少钱?",
        "learner",
        datetime(2026, 12, 4, 12, 0, 5),
        "assistant",
        "u000001",
    )
    assert [s.message_id for s in api.stored] == [answer.json()["message_id"]]


def test_the_same_provider_message_twice_is_stored_once(api: Api) -> None:
    first = api.post(payload())
    again = api.post(payload())
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
    assert api.messages() == [("in-1", "多少钱?", True)]
    assert len(api.stored) == 1, "only a new message is handed on"
    other = api.post({**payload(), "message_id": "in-2"}, message_id="in-2")
    assert other.json()["duplicate"] is False and len(api.messages()) == 2


def test_a_learner_never_imported_becomes_a_contact_of_the_channel(api: Api) -> None:
    assert api.post(payload(sender="new-learner")).status_code == 200
    with api.engine.connect() as conn:
        owner = conn.execute(select(CT.owner_id).where(CT.external_id == "new-learner")).one()
    assert owner == (None,)


@pytest.mark.parametrize(
    "tamper",
    ["no signature", "another secret", "stale", "body changed"],
)
def test_a_message_that_is_not_signed_right_is_401_and_stores_nothing(
    api: Api, tamper: str
) -> None:
    if tamper == "no signature":
        answer = api.post(payload(), secret=None)
    elif tamper == "another secret":
        answer = api.post(payload(), secret=new_secret())
    elif tamper == "stale":
        answer = api.post(payload(), when=datetime.now(UTC) - timedelta(minutes=10))
    else:
        body = json.dumps(payload()).encode()
        headers = signed_headers(SECRET, "in-1", datetime.now(UTC), body)
        changed = body.replace(b"u000001", b"u000002")
        answer = httpx.post(f"{api.url}/v1/inbound/mock", content=changed, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"].startswith("webhook signature: ")
    assert api.messages() == [] and api.stored == []


@pytest.mark.parametrize(
    ("document", "raw", "needle"),
    [
        (None, b"not json", "the body is not JSON"),
        (None, b"[1, 2]", "the body must be a JSON object"),
        ({"message_id": "in-1", "account": "a1", "text": "hi"}, None, "from: Field required"),
        (payload(text="x" * (MAX_TEXT + 1)), None, "text: String should have at most"),
        (payload(sent_at="yesterday"), None, "sent_at: "),
        ({**payload(), "account": "nobody"}, None, "no mock account named 'nobody'"),
    ],
)
def test_a_malformed_payload_is_400_with_the_reason_and_stores_nothing(
    api: Api, document: object, raw: bytes | None, needle: str
) -> None:
    answer = api.post(document, raw=raw)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["error"]
    assert api.messages() == []


def test_an_unknown_channel_is_404(api: Api) -> None:
    answer = api.post(payload(), channel="pigeon")
    assert answer.status_code == 404 and "pigeon" in answer.json()["error"]


def test_without_a_secret_inbound_is_refused(engine: Engine) -> None:
    for api in running_api(engine, None):
        answer = api.post(payload())
        assert answer.status_code == 503
        assert "SIYU_WEBHOOK_SECRET is not set" in answer.json()["error"]
        assert api.messages() == []


def test_the_mock_platform_delivers_signed_inbound_end_to_end(api: Api, tmp_path: Path) -> None:
    inbound_url = f"{api.url}/v1/inbound/mock"
    env = {"SIYU_WEBHOOK_SECRET": SECRET}
    with running_mock_platform(tmp_path / "p.db", inbound_url=inbound_url, env=env) as platform:
        for text in ("怎么进群?", "退订"):
            answer = httpx.post(
                f"{platform}/v1/simulate/inbound",
                json={"account": "a1", "from": "u000002", "text": text},
                timeout=30,
            ).json()
            assert (answer["delivered"], answer["status"]) == (True, 200), answer
    assert [text for _, text, _ in api.messages()] == ["怎么进群?", "退订"]
    with api.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.conversations)).scalar() == 1


def test_the_database_work_of_requests_runs_on_a_few_threads_at_once(engine: Engine) -> None:
    """More threads than cores only add GIL handoffs to the slowest requests (`DB_THREADS`)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from worker.api.app import DB_THREADS

    lock, inside, most = threading.Lock(), [0], [0]

    def slow_hook(stored: Stored) -> None:  # runs on the request's database thread
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        threading.Event().wait(0.3)
        with lock:
            inside[0] -= 1

    app = create_app(Settings(webhook_secret=SECRET), engine, on_stored=slow_hook)
    with serving(app) as url:
        api = Api(url, engine)
        with ThreadPoolExecutor(3 * DB_THREADS) as pool:
            answers = list(
                pool.map(
                    lambda i: api.post(payload(f"第{i}个问题", message_id=f"p-{i}")),
                    range(3 * DB_THREADS),
                )
            )
    assert [a.status_code for a in answers] == [200] * (3 * DB_THREADS)
    assert most[0] == DB_THREADS
