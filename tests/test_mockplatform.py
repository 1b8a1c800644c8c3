"""The mock platform, driven as a real subprocess over HTTP (plus a few in-process checks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tests.support.mockplatform import running_mock_platform
from worker.cli.mockplatform import register
from worker.errors import UserError
from worker.mockplatform import MockPlatformConfig
from worker.mockplatform.__main__ import main as mockplatform_main
from worker.mockplatform.behaviour import MockPlatform, SendOutcome, Verdict
from worker.mockplatform.signing import verify
from worker.mockplatform.store import PlatformStore

SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-32-bytes-ok!").decode()


class Receiver:
    """A loopback HTTP server that records the webhook calls it gets and answers `status`."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.calls.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/inbound/mock"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    """One permissive platform shared by the tests below; each test uses its own names."""
    db = tmp_path_factory.mktemp("platform") / "platform.db"
    with running_mock_platform(
        db,
        inbound_url=receiver.url,
        unknown_recipients=["ghost-at-start"],
        env={"SIYU_WEBHOOK_SECRET": SECRET},
    ) as url:
        yield url


@pytest.fixture
def http(platform: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform, timeout=10) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send(client: httpx.Client, account: str, to: str, key: str, text: str = "hi") -> httpx.Response:
    body = {"to": to, "text": text, "idempotency_key": key}
    return client.post(f"/v1/accounts/{account}/messages", json=body)


def test_the_same_idempotency_key_twice_stores_one_message(http: httpx.Client) -> None:
    first_account, second_account, key = unique("a"), unique("b"), unique("k")
    first = send(http, first_account, "u1", key)
    again = send(http, second_account, "u1", key, text="different")
    assert first.status_code == again.status_code == 200
    assert again.json()["message_id"] == first.json()["message_id"]
    assert first.json()["message_id"].startswith("m-")
    stored = [m for m in http.get("/v1/messages").json() if m["idempotency_key"] == key]
    assert [(m["account"], m["text"]) for m in stored] == [(first_account, "hi")]
    stats = http.get("/v1/stats").json()
    assert stats[first_account]["accepted"] == 1
    assert stats[second_account] == {
        "accepted": 0,
        "duplicate_attempts": 1,
        "rate_limited": 0,
        "not_found": 0,
        "failed": 0,
        "banned": False,
    }


def test_a_message_can_be_looked_up_by_its_idempotency_key(http: httpx.Client) -> None:
    account, key = unique("a"), unique("run/7/contact")  # keys may contain slashes
    message_id = send(http, account, "u9", key, text="课程 link").json()["message_id"]
    found = http.get(f"/v1/messages/{key}").json()
    assert {k: v for k, v in found.items() if k != "received_at"} == {
        "message_id": message_id,
        "account": account,
        "to": "u9",
        "text": "课程 link",
        "idempotency_key": key,
    }
    received = datetime.fromisoformat(found["received_at"])
    assert received.tzinfo == UTC and found["received_at"].endswith("+00:00")
    assert len(found["received_at"].split(".")[1]) == len("123456+00:00")
    missing = http.get(f"/v1/messages/{unique('nope')}")
    assert (missing.status_code, missing.json()) == (404, {"error": "not_found"})


def test_messages_are_listed_in_arrival_order_and_filtered_by_account_and_recipient(
    http: httpx.Client,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    sent = [(alice, "u1"), (bob, "u1"), (alice, "u2"), (alice, "u1")]
    keys = [send(http, a, to, unique("k")).json()["message_id"] for a, to in sent]

    def ids(**params: str) -> list[str]:
        return [m["message_id"] for m in http.get("/v1/messages", params=params).json()]

    assert ids(account=alice) == [keys[0], keys[2], keys[3]]
    assert ids(account=alice, to="u1") == [keys[0], keys[3]]
    assert ids(account=bob) == [keys[1]]
    everything = http.get("/v1/messages").json()
    stamps = [m["received_at"] for m in everything]
    assert stamps == sorted(stamps)
    assert {m["message_id"] for m in everything} >= set(keys)


def test_recipients_marked_unknown_get_404_and_nothing_is_stored(http: httpx.Client) -> None:
    account, ghost = unique("a"), unique("ghost")
    assert http.post("/v1/simulate/unknown-recipients", json={"to": [ghost]}).status_code == 200
    for to in (ghost, "ghost-at-start"):
        response = send(http, account, to, unique("k"))
        assert (response.status_code, response.json()) == (404, {"error": "recipient_not_found"})
    assert http.get("/v1/messages", params={"account": account}).json() == []
    assert http.get("/v1/stats").json()[account]["not_found"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"text": "hi", "idempotency_key": "k"},
        {"to": "u1", "text": "hi"},
        {"to": 42, "text": "hi", "idempotency_key": "k"},
        {"to": "u1", "text": ["hi"], "idempotency_key": "k"},
    ],
)
def test_a_malformed_send_is_rejected_with_422(http: httpx.Client, body: dict[str, Any]) -> None:
    assert http.post("/v1/accounts/a/messages", json=body).status_code == 422


def test_concurrent_clients_get_distinct_ids_and_every_message_is_stored(
    platform: str,
) -> None:
    account = unique("busy")

    def client_sends(worker: int) -> list[str]:
        with httpx.Client(base_url=platform, timeout=10) as client:
            return [
                send(client, account, f"u{worker}", f"{account}-{worker}-{i}").json()["message_id"]
                for i in range(50)
            ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [mid for batch in pool.map(client_sends, range(4)) for mid in batch]
    assert len(set(ids)) == 200
    with httpx.Client(base_url=platform) as client:
        assert len(client.get("/v1/messages", params={"account": account}).json()) == 200


def test_racing_duplicates_all_get_the_first_message_id(platform: str) -> None:
    account, key = unique("race"), unique("k")

    def attempt(_: int) -> str:
        with httpx.Client(base_url=platform, timeout=10) as client:
            return str(send(client, account, "u1", key).json()["message_id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(attempt, range(8)))
    assert len(ids) == 1
    with httpx.Client(base_url=platform) as client:
        stats = client.get("/v1/stats").json()[account]
    assert (stats["accepted"], stats["duplicate_attempts"]) == (1, 7)


def test_an_account_over_its_per_minute_limit_gets_429_and_is_banned_after_k_of_them(
    tmp_path: Path,
) -> None:
    with (
        running_mock_platform(tmp_path / "p.db", per_minute=3, ban_after=2) as url,
        httpx.Client(base_url=url) as http,
    ):
        first = [send(http, "fast", "u1", f"k{i}") for i in range(3)]
        assert [r.status_code for r in first] == [200, 200, 200]
        limited = send(http, "fast", "u1", "k3")
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert 55 < limited.json()["retry_after"] <= 60
        assert limited.headers["Retry-After"] == "60"
        assert send(http, "fast", "u1", "k4").status_code == 429  # second violation: banned
        banned = send(http, "fast", "u1", "k0")  # even a duplicate: the ban is checked first
        assert (banned.status_code, banned.json()) == (403, {"error": "account_banned"})
        assert send(http, "calm", "u1", "k5").status_code == 200
        stats = http.get("/v1/stats").json()
    assert stats["fast"] == {
        "accepted": 3,
        "duplicate_attempts": 0,
        "rate_limited": 2,
        "not_found": 0,
        "failed": 0,
        "banned": True,
    }
    assert stats["calm"]["banned"] is False


@pytest.fixture(scope="module")
def failing_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fail_rate 1.0 and no inbound_url."""
    db = tmp_path_factory.mktemp("failing") / "platform.db"
    with running_mock_platform(db, fail_rate=1.0) as url:
        yield url


def test_a_fail_rate_of_one_answers_500_and_stores_nothing(failing_platform: str) -> None:
    with httpx.Client(base_url=failing_platform) as http:
        responses = [send(http, "acct", "u1", f"k{i}") for i in range(3)]
        assert {(r.status_code, r.json()["error"]) for r in responses} == {(500, "internal")}
        assert http.get("/v1/messages").json() == []
        assert http.get("/v1/stats").json()["acct"]["failed"] == 3


def test_simulated_inbound_without_an_inbound_url_is_a_409(failing_platform: str) -> None:
    body = {"account": "acct", "from": "u1", "text": "hello"}
    response = httpx.post(f"{failing_platform}/v1/simulate/inbound", json=body)
    assert (response.status_code, response.json()) == (409, {"error": "no inbound_url configured"})


def test_state_and_bans_survive_a_restart_on_the_same_db_file(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    with (
        running_mock_platform(db, per_minute=1, ban_after=1) as url,
        httpx.Client(base_url=url) as http,
    ):
        kept = send(http, "risky", "u1", "kept").json()["message_id"]
        assert send(http, "risky", "u1", "over").status_code == 429
        http.post("/v1/simulate/unknown-recipients", json={"to": ["gone"]})
    with running_mock_platform(db) as url, httpx.Client(base_url=url) as http:
        assert http.get("/v1/messages/kept").json()["message_id"] == kept
        assert send(http, "risky", "u1", "later").status_code == 403
        assert send(http, "other", "u1", "kept").json() == {"message_id": kept}
        assert send(http, "other", "gone", "k2").status_code == 404
        stats = http.get("/v1/stats").json()
    assert stats["risky"]["banned"] is True
    assert (stats["risky"]["accepted"], stats["risky"]["rate_limited"]) == (1, 1)


def test_simulated_inbound_reaches_the_webhook_with_a_signature_that_verifies(
    http: httpx.Client, receiver: Receiver
) -> None:
    receiver.status = 200
    body = {"account": "acct", "from": "u42", "text": "退订 please"}
    answer = http.post("/v1/simulate/inbound", json=body).json()
    assert answer["delivered"] is True and answer["status"] == 200
    headers, raw = receiver.calls[-1]
    payload = json.loads(raw)
    assert payload["message_id"] == answer["message_id"]
    assert {k: payload[k] for k in ("account", "from", "text")} == body
    assert datetime.fromisoformat(payload["sent_at"]).tzinfo == UTC
    # Standard Webhooks, computed here by hand from the spec: HMAC-SHA256 with the base64 key
    # over "id.timestamp.body", base64, versioned "v1,".
    assert headers["webhook-id"] == answer["message_id"]
    timestamp = headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{answer['message_id']}.{timestamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert verify(SECRET, raw, headers)
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    assert not verify(other, raw, headers)
    assert not verify(SECRET, raw + b" ", headers), "the body is signed byte for byte"


def test_simulated_inbound_reports_a_refusing_webhook(
    http: httpx.Client, receiver: Receiver
) -> None:
    receiver.status = 401
    try:
        answer = http.post("/v1/simulate/inbound", json={"account": "a", "from": "u", "text": "x"})
    finally:
        receiver.status = 200
    assert (answer.json()["delivered"], answer.json()["status"]) == (False, 401)


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[Callable[..., MockPlatform]]:
    """In-process platforms over a temporary file, closed after the test."""
    made: list[MockPlatform] = []

    def make(
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        **options: Any,
    ) -> MockPlatform:
        config = MockPlatformConfig(tmp_path / f"p{len(made)}.db", **options)
        made.append(MockPlatform(PlatformStore(config.db_path), config, clock=clock, rng=rng))
        return made[-1]

    yield make
    for platform in made:
        platform.store.close()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_rate_window_slides_and_frees_a_slot_exactly_when_retry_after_says(
    make_platform: Callable[..., MockPlatform],
) -> None:
    clock = FakeClock(1000.0)
    platform = make_platform(per_minute=2, clock=clock)
    assert platform.submit("a", "u", "t", "k1").verdict is Verdict.ACCEPTED
    clock.now = 1010.0
    assert platform.submit("a", "u", "t", "k2").verdict is Verdict.ACCEPTED
    clock.now = 1020.0
    assert platform.submit("a", "u", "t", "k3") == SendOutcome(Verdict.RATE_LIMITED, None, 40.0)
    clock.now = 1059.999
    assert platform.submit("a", "u", "t", "k3").verdict is Verdict.RATE_LIMITED
    clock.now = 1060.0
    assert platform.submit("a", "u", "t", "k3").verdict is Verdict.ACCEPTED
    assert platform.submit("a", "u", "t", "k4").retry_after_s == pytest.approx(10.0)
    assert platform.stats()["a"].rate_limited == 3


def test_injected_failures_follow_the_fail_rate(
    make_platform: Callable[..., MockPlatform],
) -> None:
    draws = iter([0.29, 0.31])
    platform = make_platform(fail_rate=0.3, rng=lambda: next(draws))
    assert platform.submit("a", "u", "t", "k1").verdict is Verdict.FAILED
    assert platform.submit("a", "u", "t", "k1").verdict is Verdict.ACCEPTED


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--per-minute", "-1"], "per_minute"),
        (["--ban-after", "-2"], "ban_after"),
        (["--fail-rate", "1.5"], "fail_rate"),
        (["--latency-ms", "-1"], "latency_ms"),
        (["--port", "70000"], "port"),
        (["--port", "eighty"], "--port"),
        (["--inbound-url", "not a url"], "inbound_url"),
    ],
)
def test_bad_command_line_values_exit_2_with_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        mockplatform_main(["--db", str(tmp_path / "p.db"), *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def scratch_cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps `mock-platform` a named subcommand
        pass

    return app


def test_the_cli_command_builds_the_config_and_creates_the_db_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.mockplatform
    from worker.config import get_settings

    calls: list[tuple[MockPlatformConfig, str, int]] = []
    monkeypatch.setattr(worker.mockplatform, "serve", lambda *args: calls.append(args))
    monkeypatch.setenv("SIYU_WEBHOOK_SECRET", SECRET)
    get_settings.cache_clear()
    db = tmp_path / "state" / "mp.db"
    argv = ["mock-platform", "--db", str(db), "--port", "8901", "--per-minute", "5"]
    argv += ["--unknown-recipients", "x, y", "--inbound-url", "http://127.0.0.1:1/in"]
    try:
        result = CliRunner().invoke(scratch_cli(), argv)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    config, host, port = calls[0]
    assert (host, port, config.per_minute, config.webhook_secret) == ("127.0.0.1", 8901, 5, SECRET)
    assert config.unknown_recipients == {"x", "y"} and db.parent.is_dir()


def test_the_cli_command_turns_bad_values_into_a_user_error(tmp_path: Path) -> None:
    argv = ["mock-platform", "--db", str(tmp_path / "p.db"), "--fail-rate", "2"]
    result = CliRunner().invoke(scratch_cli(), argv)
    assert isinstance(result.exception, UserError)
    assert "fail_rate" in str(result.exception)


@pytest.mark.parametrize(
    "secret",
    ["s3", "whsec_", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_a_webhook_secret_not_in_the_standard_format_is_refused(
    tmp_path: Path, secret: str
) -> None:
    with pytest.raises(ValueError, match="must be 'whsec_' followed by the base64"):
        MockPlatformConfig(db_path=tmp_path / "p.db", webhook_secret=secret)
