"""The `mock` channel adapter: error mapping through httpx.MockTransport, then the real platform."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.mockplatform import free_port, running_mock_platform
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import (
    AccountBanned,
    AuthExpired,
    ChannelError,
    DeliveryUnknown,
    RateLimited,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.mock import MockChannel
from worker.channels.registry import build_channel
from worker.errors import UserError

PRIVATE_TO = "wxid_private_recipient"
PRIVATE_TEXT = "secret discount code 8888"
MESSAGE = OutboundMessage(to=PRIVATE_TO, text=PRIVATE_TEXT, idempotency_key="run-1/contact-2")
URL = "http://platform.test:8900"

Handler = Callable[[httpx.Request], httpx.Response]


def channel_with(handler: Handler, **config: Any) -> MockChannel:
    return MockChannel("sales-1", {"url": URL, **config}, transport=httpx.MockTransport(handler))


def answering(status: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def raising(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handler


def test_a_send_posts_the_message_to_the_accounts_endpoint_and_returns_its_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"message_id": "m-1"})

    channel = channel_with(handler, remote_account="wx/张三")
    assert channel.send(MESSAGE) == SendResult("m-1")
    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/v1/accounts/wx%2F%E5%BC%A0%E4%B8%89/messages"
    assert json.loads(request.content) == {
        "to": PRIVATE_TO,
        "text": PRIVATE_TEXT,
        "idempotency_key": "run-1/contact-2",
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, {"error": "account_banned"}, AccountBanned),
        (403, {"error": "verify_phone"}, SenderAtRisk),
        (404, {"error": "recipient_not_found"}, RecipientUnreachable),
        (401, {"error": "token_expired"}, AuthExpired),
        (500, {"error": "internal"}, Transient),
        (502, None, DeliveryUnknown),  # a gateway: the platform behind it may have accepted
        (504, None, DeliveryUnknown),
        (503, {"error": "maintenance"}, Transient),
        (404, {"detail": "Not Found"}, ChannelError),
        (422, {"detail": [{"msg": "bad", "input": PRIVATE_TEXT}]}, ChannelError),
        (409, {"error": "conflict"}, ChannelError),
        (200, {"unexpected": True}, DeliveryUnknown),
    ],
)
def test_platform_answers_map_onto_the_error_taxonomy(
    status: int, body: object, expected: type[ChannelError]
) -> None:
    with pytest.raises(ChannelError) as raised:
        channel_with(answering(status, body)).send(MESSAGE)
    assert type(raised.value) is expected
    assert "sales-1" in str(raised.value)
    assert PRIVATE_TO not in str(raised.value) and PRIVATE_TEXT not in str(raised.value)


@pytest.mark.parametrize(
    ("body", "headers", "expected_s"),
    [
        ({"error": "rate_limited", "retry_after": 12.5}, {"Retry-After": "13"}, 12.5),
        ({"error": "rate_limited"}, {"Retry-After": "7"}, 7.0),
        (None, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1.0),
        ({"retry_after": "soon"}, None, 1.0),
        (None, None, 1.0),
    ],
)
def test_a_429_is_rate_limited_with_the_platforms_wait(
    body: object, headers: dict[str, str] | None, expected_s: float
) -> None:
    with pytest.raises(RateLimited) as raised:
        channel_with(answering(429, body, headers)).send(MESSAGE)
    assert raised.value.retry_after_s == expected_s


@pytest.mark.parametrize(
    ("network_error", "expected"),
    [
        (httpx.ConnectError, Transient),
        (httpx.ConnectTimeout, Transient),
        (httpx.PoolTimeout, Transient),
        (httpx.ReadTimeout, DeliveryUnknown),
        (httpx.RemoteProtocolError, DeliveryUnknown),
        (httpx.ReadError, DeliveryUnknown),
        (httpx.WriteError, DeliveryUnknown),
        (httpx.WriteTimeout, DeliveryUnknown),
    ],
)
def test_network_errors_say_whether_the_message_may_have_been_delivered(
    network_error: type[httpx.TransportError], expected: type[ChannelError]
) -> None:
    with pytest.raises(ChannelError) as raised:
        channel_with(raising(network_error)).send(MESSAGE)
    assert type(raised.value) is expected
    assert isinstance(raised.value.__cause__, network_error)


def test_lookup_finds_a_send_by_its_key_and_returns_none_for_an_unknown_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/v1/messages/run-1%2Fcontact-2":
            return httpx.Response(200, json={"message_id": "m-7", "to": PRIVATE_TO})
        return httpx.Response(404, json={"error": "not_found"})

    channel = channel_with(handler)
    assert channel.lookup("run-1/contact-2") == SendResult("m-7")
    assert channel.lookup("never-sent") is None


@pytest.mark.parametrize(
    "handler",
    [answering(500), answering(429), answering(200, {}), raising(httpx.ReadTimeout)],
    ids=["500", "429", "200-without-id", "read-timeout"],
)
def test_a_lookup_that_cannot_tell_is_transient(handler: Handler) -> None:
    with pytest.raises(Transient):
        channel_with(handler).lookup("run-1/contact-2")


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({}, "url"),
        ({"url": "localhost:8900"}, "url"),
        ({"url": "ftp://platform.test"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http://platform.test:99999"}, "url"),
        ({"url": URL, "timeout_s": "0"}, "timeout_s"),
        ({"url": URL, "timeout_s": "-3"}, "timeout_s"),
        ({"url": URL, "timeout_s": "soon"}, "timeout_s"),
        ({"url": URL, "timeout_s": "nan"}, "timeout_s"),
        ({"url": URL, "remote_account": " "}, "remote_account"),
        ({"url": URL, "token": "x"}, "token"),
    ],
)
def test_bad_configuration_fails_when_the_channel_is_built(
    config: dict[str, str], complaint: str
) -> None:
    with pytest.raises(UserError) as raised:
        MockChannel("sales-1", config)
    assert "sales-1" in str(raised.value) and complaint in str(raised.value)


def test_the_registry_builds_a_mock_channel_from_string_config() -> None:
    channel = build_channel("mock", "sales-1", {"url": URL + "/", "timeout_s": "2.5"})
    try:
        assert isinstance(channel, MockChannel)
        assert channel.supports_idempotency_lookup and channel.max_text_len == 2000
    finally:
        channel.close()


LATENCY_MS = 100


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("channel") / "platform.db"
    with running_mock_platform(db, latency_ms=LATENCY_MS, unknown_recipients=["ghost"]) as url:
        yield url


@pytest.fixture
def channel(platform: str) -> Iterator[MockChannel]:
    chan = MockChannel("sales-1", {"url": platform, "remote_account": "remote-1"})
    yield chan
    chan.close()


def key() -> str:
    return f"run-1/{uuid.uuid4().hex}"


def test_against_the_real_platform_a_send_can_be_looked_up_and_repeated_safely(
    channel: MockChannel, platform: str
) -> None:
    message = OutboundMessage(to="u1", text="hello", idempotency_key=key())
    result = channel.send(message)
    assert channel.lookup(message.idempotency_key) == result
    assert channel.send(message) == result
    stored = httpx.get(f"{platform}/v1/messages", params={"account": "remote-1"}).json()
    assert [m["message_id"] for m in stored if m["idempotency_key"] == message.idempotency_key] == [
        result.message_id
    ]
    assert channel.lookup(key()) is None


def test_against_the_real_platform_a_read_timeout_is_unknown_until_looked_up(
    channel: MockChannel, platform: str
) -> None:
    impatient = MockChannel("sales-1", {"url": platform, "timeout_s": LATENCY_MS / 3000})
    message = OutboundMessage(to="u2", text="hello", idempotency_key=key())
    try:
        with pytest.raises(DeliveryUnknown):
            impatient.send(message)
    finally:
        impatient.close()
    assert channel.lookup(message.idempotency_key) is not None


def test_against_the_real_platform_an_unknown_recipient_is_unreachable(
    channel: MockChannel,
) -> None:
    with pytest.raises(RecipientUnreachable):
        channel.send(OutboundMessage(to="ghost", text="hello", idempotency_key=key()))


def test_platform_latency_delays_responses_without_serialising_them(platform: str) -> None:
    with httpx.Client(base_url=platform) as client:

        def timed_lookup(_: int) -> float:
            started = time.perf_counter()
            assert client.get(f"/v1/messages/{uuid.uuid4().hex}").status_code == 404
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            each_s = list(pool.map(timed_lookup, range(8)))
        total_s = time.perf_counter() - started
    assert min(each_s) >= LATENCY_MS / 1000
    assert total_s < 4 * LATENCY_MS / 1000  # one at a time would take 8 x the latency


def test_a_platform_that_is_not_running_is_transient(tmp_path: Path) -> None:
    channel = MockChannel("sales-1", {"url": f"http://127.0.0.1:{free_port()}"})
    try:
        with pytest.raises(Transient):
            channel.send(MESSAGE)
    finally:
        channel.close()
