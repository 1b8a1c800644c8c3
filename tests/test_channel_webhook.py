"""The `webhook` channel against a faithful local gateway (`tests/support/gateway.py`): real
HTTP on loopback, every signature verified with the official `standardwebhooks` library, every
documented answer mapped, and the secret shown nowhere."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.support.gateway import ACCEPT_THEN_DROP, DROP, Gateway, Reply, running_gateway
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RateLimited,
    SenderAtRisk,
    Transient,
)
from worker.channels.registry import build_channel
from worker.channels.webhook import WebhookChannel
from worker.errors import UserError
from worker.webhooks import new_secret

SECRET = new_secret()
MESSAGE = OutboundMessage("13800138000", "王同学，Python 入门开课啦", "siyu-i1-7-42", "spring")


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with running_gateway(SECRET) as gw:
        yield gw


def channel(gw: Gateway, *, lookup: bool = True, **config: str) -> WebhookChannel:
    settings = {"url": gw.url, "secret": SECRET, "timeout_s": "2", **config}
    if lookup:
        settings["lookup_url"] = gw.lookup_url
    made = build_channel("webhook", "gw-1", settings)
    assert isinstance(made, WebhookChannel)
    return made


def test_one_signed_post_per_message_in_the_contract_format(gateway: Gateway) -> None:
    result = channel(gateway).send(MESSAGE)
    [attempt] = gateway.attempts
    assert gateway.bad_signatures == 0, "verified by the official library"
    assert attempt.body == {
        "idempotency_key": "siyu-i1-7-42", "account": "gw-1", "to": "13800138000",
        "text": "王同学，Python 入门开课啦", "campaign": "spring",
    }  # fmt: skip
    assert attempt.headers["webhook-id"] == attempt.headers["idempotency-key"] == "siyu-i1-7-42"
    assert attempt.headers["webhook-signature"].startswith("v1,")
    assert result == SendResult(gateway.stored["siyu-i1-7-42"]["message_id"])


def test_a_reply_carries_no_campaign(gateway: Gateway) -> None:
    channel(gateway).send(OutboundMessage("u1", "您好", "siyu-i1-m9"))
    assert gateway.attempts[0].body["campaign"] is None


def test_a_gateway_with_another_secret_refuses_the_signature(gateway: Gateway) -> None:
    wrong = build_channel("webhook", "gw-1", {"url": gateway.url, "secret": new_secret()})
    with pytest.raises(SenderAtRisk):
        wrong.send(MESSAGE)
    assert gateway.bad_signatures == 1 and gateway.stored == {}


HTTP_DATE = "<30 s from now, as an HTTP date>"  # made when the test runs


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (Reply(429, {"error": "slow down"}, {"Retry-After": "7"}), RateLimited),
        (Reply(429, headers={"Retry-After": HTTP_DATE}), RateLimited),
        (Reply(429), RateLimited),
        (Reply(503), Transient),
        (Reply(503, headers={"Retry-After": "7"}), RateLimited),
        (Reply(401), SenderAtRisk),
        (Reply(403, {"error": "account disabled"}), SenderAtRisk),
        (Reply(301, headers={"Location": "https://gw.example.com/send"}), SenderAtRisk),
        (Reply(307, headers={"Location": "https://gw.example.com/v2/send"}), SenderAtRisk),
        (Reply(400, {"error": "bad phone"}), ChannelError),
        (Reply(404), ChannelError),
        (Reply(422), ChannelError),
        (Reply(500), DeliveryUnknown),
        (Reply(502), DeliveryUnknown),
        (Reply(504), DeliveryUnknown),
        (DROP, DeliveryUnknown),
        (ACCEPT_THEN_DROP, DeliveryUnknown),
        (Reply(200, delay_s=5), DeliveryUnknown),
    ],
    ids=lambda v: getattr(v, "__name__", None) or f"{getattr(v, 'status', v)}",
)
def test_every_documented_answer_maps_to_its_outcome(
    gateway: Gateway, reply: Reply, raised: type[ChannelError]
) -> None:
    if reply.headers.get("Retry-After") == HTTP_DATE:
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        reply = replace(reply, headers={"Retry-After": when})
    gateway.then(reply)
    with pytest.raises(ChannelError) as caught:
        channel(gateway, timeout_s="0.5").send(MESSAGE)
    assert type(caught.value) is raised, caught.value
    if raised is RateLimited:
        assert isinstance(caught.value, RateLimited)
        asked = reply.headers.get("Retry-After", "")
        wanted = 7.0 if asked == "7" else 30.0 if asked else 1.0
        assert caught.value.retry_after_s == pytest.approx(wanted, abs=2)
    text = str(caught.value)
    assert SECRET not in text and "13800138000" not in text and "王同学" not in text


@pytest.mark.parametrize(
    ("reply", "message_id"),
    [(Reply(200), "gw-1"), (Reply(202), "siyu-i1-7-42"), (Reply(204), "siyu-i1-7-42")],
)
def test_any_2xx_is_sent_and_without_an_id_it_is_known_by_its_key(
    gateway: Gateway, reply: Reply, message_id: str
) -> None:
    gateway.then(reply)
    assert channel(gateway).send(MESSAGE) == SendResult(message_id)


def test_a_gateway_that_is_not_listening_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = build_channel(
        "webhook", "gw-1", {"url": f"http://127.0.0.1:{port}/send", "secret": SECRET}
    )
    with pytest.raises(Transient):
        closed.send(MESSAGE)


def test_an_ambiguous_send_is_settled_by_the_signed_lookup(gateway: Gateway) -> None:
    sender = channel(gateway)
    gateway.then(ACCEPT_THEN_DROP)
    with pytest.raises(DeliveryUnknown):
        sender.send(MESSAGE)
    assert sender.can_lookup
    assert sender.lookup("siyu-i1-7-42") == SendResult("gw-1")
    assert sender.lookup("siyu-i1-7-43") is None
    assert gateway.lookups == ["siyu-i1-7-42", "siyu-i1-7-43"] and gateway.bad_signatures == 0


def test_without_a_lookup_url_an_ambiguous_send_cannot_be_settled(gateway: Gateway) -> None:
    assert channel(gateway, lookup=False).can_lookup is False


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"secret": SECRET}, "needs --config url=..."),
        ({"url": "http://gw"}, "needs --config secret=..."),
        ({"url": "ftp://gw", "secret": SECRET}, "config url must be an http(s) URL"),
        ({"url": "http://gw", "secret": "not-a-secret"}, "config secret must start with 'whsec_'"),
        ({"url": "http://gw", "secret": "whsec_???"}, "is not base64"),
        ({"url": "http://gw", "secret": SECRET, "lookup_url": "http://gw/sent"}, "{key}"),
        ({"url": "http://gw", "secret": SECRET, "timeout_s": "0"}, "timeout_s must be"),
        ({"url": "http://gw", "secret": SECRET, "token": "x"}, "unknown config key(s) token"),
    ],
)
def test_bad_config_is_refused_at_accounts_add_without_echoing_the_secret(
    config: dict[str, str], says: str
) -> None:
    with pytest.raises(UserError) as caught:
        build_channel("webhook", "gw-1", config)
    assert says in str(caught.value)
    assert SECRET not in str(caught.value) and "not-a-secret" not in str(caught.value)


def test_the_secret_is_not_in_the_repr(gateway: Gateway) -> None:
    sender = channel(gateway)
    assert SECRET not in repr(sender) and "'secret': '***'" in repr(sender)
    assert sender.redact(f"oops {SECRET}") == "oops ***"
    assert json.dumps(sender.config)  # the stored config still holds it, for sending


def test_a_password_in_the_gateway_url_is_masked_in_httpx_request_lines(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # A gateway behind basic auth: httpx logs each request line with its URL.
    url = gateway.url.replace("http://", "http://siyu:gw-basic-pass@")
    lookup = gateway.lookup_url.replace("http://", "http://siyu:gw-basic-pass@")
    sender = channel(gateway, url=url, lookup_url=lookup)
    with caplog.at_level(logging.DEBUG):
        sender.send(MESSAGE)
        sender.lookup(MESSAGE.idempotency_key)
    lines = "\n".join(record.getMessage() for record in caplog.records)
    assert "http://siyu:***@127.0.0.1" in lines, "the request lines are there, masked"
    assert "gw-basic-pass" not in lines
