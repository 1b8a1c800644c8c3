"""The `telegram` channel against a faithful local Bot API (`tests/support/telegram_api.py`):
real HTTP on loopback, Telegram's own answers mapped to the error taxonomy, long texts split
in order, and the bot token shown nowhere."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.telegram_api import (
    ACCEPT_THEN_DROP,
    BLOCKED,
    CHAT_NOT_FOUND,
    DEACTIVATED,
    DROP,
    KICKED,
    NOT_MEMBER,
    TOO_LONG,
    BotApi,
    Reply,
    failure,
    refusal,
    running_bot_api,
    too_many_requests,
)
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    OptedOut,
    RateLimited,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.registry import build_channel
from worker.channels.telegram import MAX_PARTS, PART_GAP_S, PART_LEN, TelegramChannel, split_text
from worker.dispatch.sending import Stop, send_one
from worker.errors import UserError
from worker.store.models import DeliveryState

TOKEN = "7012345678:AAFq3xZr-9Kd_2mVbN4wLs8TyPeHcJuGiOa"
SECRET_HALF = TOKEN.partition(":")[2]
CHAT = "123456789"
MESSAGE = OutboundMessage(
    CHAT, "王同学，Python 入门开课啦 <b>*不是标记*</b>", "siyu-i1-7-42", "spring"
)


@pytest.fixture
def api() -> Iterator[BotApi]:
    with running_bot_api(TOKEN) as running:
        yield running


def channel(
    api: BotApi, *, pauses: list[tuple[int, float]] | None = None, **config: str
) -> TelegramChannel:
    """The bot on the fake, built as `accounts add` builds it; with `pauses`, its pauses are
    not slept but noted there: (attempts the fake had seen, seconds)."""
    settings = {"token": TOKEN, "api_base": api.url, "timeout_s": "2", **config}
    if pauses is not None:
        return TelegramChannel(
            "tg-1", settings, sleep=lambda seconds: pauses.append((len(api.attempts), seconds))
        )
    made = build_channel("telegram", "tg-1", settings)
    assert isinstance(made, TelegramChannel)
    return made


def test_one_plain_send_message_per_message_with_the_chat_id_and_text(api: BotApi) -> None:
    result = channel(api).send(MESSAGE)
    [attempt] = api.attempts
    assert attempt.bot_id == 7012345678
    assert attempt.body == {"chat_id": CHAT, "text": MESSAGE.text}, "no parse_mode: plain text"
    assert api.sent_to(CHAT) == [MESSAGE.text]
    assert result == SendResult("1")


def test_the_fake_counts_a_repeated_chat_and_text_as_a_duplicate(api: BotApi) -> None:
    sender = channel(api)
    sender.send(MESSAGE)
    sender.send(OutboundMessage(CHAT, "另一条", "k-2"))
    assert api.duplicate_attempts == 0
    sender.send(MESSAGE)
    assert api.duplicate_attempts == 1 and api.sent_to(CHAT) == [
        MESSAGE.text,
        "另一条",
        MESSAGE.text,
    ]


@dataclass(frozen=True)
class Case:
    """One way Telegram answers, and what the channel must make of it."""

    raised: type[ChannelError]
    reply: Reply | None = None  # the next answer, whatever the chat
    chat_refusal: tuple[int, str] | None = None  # every answer for CHAT
    to: str = CHAT
    config: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    reason: str | None = None


CASES = {
    "429 retry_after": Case(RateLimited, too_many_requests(7), retry_after_s=7.0),
    "429 without parameters": Case(
        RateLimited, Reply(429, failure(429, "Too Many Requests")), retry_after_s=1.0
    ),
    "403 blocked": Case(OptedOut, chat_refusal=(403, BLOCKED), reason="blocked"),
    "403 deactivated": Case(RecipientUnreachable, chat_refusal=(403, DEACTIVATED)),
    "403 kicked": Case(RecipientUnreachable, chat_refusal=(403, KICKED)),
    "403 not a member": Case(RecipientUnreachable, chat_refusal=(403, NOT_MEMBER)),
    "400 chat not found": Case(RecipientUnreachable, chat_refusal=(400, CHAT_NOT_FOUND)),
    "400 no such chat id": Case(RecipientUnreachable, to="u000001"),
    "400 too long": Case(ChannelError, refusal(400, TOO_LONG)),
    "400 other": Case(ChannelError, refusal(400, "Bad Request: can't parse entities")),
    "401 token": Case(SenderAtRisk, config={"token": "7012345678:" + "x" * 35}),
    "404 path": Case(SenderAtRisk, config={"api_base": "<fake>/wrong"}),
    "302 redirect": Case(SenderAtRisk, Reply(302, {"ok": False})),
    "500": Case(DeliveryUnknown, refusal(500, "Internal Server Error")),
    "502": Case(DeliveryUnknown, refusal(502, "Bad Gateway")),
    "dropped": Case(DeliveryUnknown, DROP),
    "accepted then dropped": Case(DeliveryUnknown, ACCEPT_THEN_DROP),
    "read timeout": Case(DeliveryUnknown, Reply(delay_s=5)),
    "200 not ok": Case(DeliveryUnknown, Reply(200, {"ok": False, "result": {"message_id": 9}})),
    "200 no message": Case(DeliveryUnknown, Reply(200, {"ok": True, "result": True})),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_documented_answer_maps_to_its_outcome(api: BotApi, case: Case) -> None:
    if case.reply is not None:
        api.then(case.reply)
    if case.chat_refusal is not None:
        api.refuse(CHAT, *case.chat_refusal)
    config = {k: v.replace("<fake>", api.url) for k, v in case.config.items()}
    with pytest.raises(ChannelError) as caught:
        channel(api, timeout_s="0.5", **config).send(
            OutboundMessage(case.to, MESSAGE.text, MESSAGE.idempotency_key)
        )
    assert type(caught.value) is case.raised, caught.value
    if case.retry_after_s is not None:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after_s == case.retry_after_s
    if case.reason is not None:
        assert isinstance(caught.value, OptedOut) and caught.value.reason == case.reason
    assert len(api.attempts) == 1, "one request, never retried inside the channel"
    text = str(caught.value)
    for secret in (TOKEN, SECRET_HALF, case.to, "王同学"):
        assert secret not in text


def test_a_blank_text_fails_without_a_request(api: BotApi) -> None:
    with pytest.raises(ChannelError) as caught:
        channel(api).send(OutboundMessage(CHAT, " \n\n ", "k-blank"))
    assert type(caught.value) is ChannelError and api.attempts == []


def test_a_bot_api_that_is_not_listening_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = build_channel(
        "telegram", "tg-1", {"token": TOKEN, "api_base": f"http://127.0.0.1:{port}"}
    )
    with pytest.raises(Transient) as caught:
        closed.send(MESSAGE)
    assert TOKEN not in str(caught.value) and SECRET_HALF not in str(caught.value)


LINE = "第{}行：Python 入门课程大纲，每一行都不长。" + "x" * 970  # about 1,000 characters


def test_a_long_text_goes_in_parts_in_order_one_second_apart(api: BotApi) -> None:
    lines = [LINE.format(i) for i in range(7)]
    pauses: list[tuple[int, float]] = []
    result = channel(api, pauses=pauses).send(OutboundMessage(CHAT, "\n".join(lines), "k-long"))
    parts = api.sent_to(CHAT)
    assert parts == ["\n".join(lines[:4]), "\n".join(lines[4:])], "whole lines, packed in order"
    assert all(len(part) <= PART_LEN for part in parts)
    assert pauses == [(1, PART_GAP_S)] and PART_GAP_S >= 1, "1 s between the parts, per the FAQ"
    assert result == SendResult("1,2") and api.duplicate_attempts == 0


@pytest.mark.parametrize(
    ("later", "stop", "opted_out"),
    [
        (too_many_requests(30), Stop("rate_limited", "cooldown", 30.0), None),
        (refusal(403, BLOCKED), None, "blocked"),
        (refusal(401, "Unauthorized"), Stop("sender_at_risk", "paused"), None),
        (refusal(500, "Internal Server Error"), None, None),
        (DROP, None, None),
    ],
    ids=["429", "403-blocked", "401", "500", "dropped"],
)
def test_a_later_part_failing_makes_the_message_unknown_and_still_takes_effect(
    api: BotApi, later: Reply, stop: Stop | None, opted_out: str | None
) -> None:
    text = "\n".join(LINE.format(i) for i in range(7))
    api.then(Reply(), later)
    with pytest.raises(DeliveryUnknown) as caught:
        channel(api, pauses=[]).send(OutboundMessage(CHAT, text, "k-long"))
    assert "part 2 of 2" in str(caught.value)
    assert api.sent_to(CHAT) == ["\n".join(LINE.format(i) for i in range(4))]
    assert len(api.attempts) == 2 and api.duplicate_attempts == 0
    # What the lane does with it: `unknown` (never resent), and the bot cools down for the
    # 429's retry_after, the learner who blocked the bot is suppressed, a refused token pauses.
    api.then(Reply(), later)
    report = send_one(channel(api, pauses=[]), 7, 1, OutboundMessage(CHAT, text, "k-2"), 5)
    assert report.outcome is not None and report.outcome.state == DeliveryState.UNKNOWN
    assert (report.stop, report.opted_out) == (stop, opted_out)


def test_a_line_longer_than_a_part_is_cut_at_its_last_space_else_hard() -> None:
    words = "课程 " * 1500  # 4,500 characters, a space at every index 3k + 2
    assert split_text(words) == [words[:4094], words[4095:]], "the space at 4094 is dropped"
    solid = "x" * 5000
    assert split_text(solid) == ["x" * PART_LEN, "x" * (5000 - PART_LEN)]
    assert split_text("a\n" + solid + "\nb") == ["a", "x" * PART_LEN, "x" * 904 + "\nb"]


def test_a_space_early_in_a_long_line_does_not_make_a_tiny_part() -> None:
    line = "ab " + "x" * 5000
    assert [len(part) for part in split_text(line)] == [PART_LEN, len(line) - PART_LEN]


def test_the_longest_text_takes_at_most_max_parts_and_the_send_covers_them(api: BotApi) -> None:
    worst = "a\n" + "b" * PART_LEN + "\n" + "c" * (TelegramChannel.max_text_len - PART_LEN - 3)
    assert len(worst) == TelegramChannel.max_text_len
    assert len(split_text(worst)) == MAX_PARTS == 3
    one_request_s = 2 + 2  # connect within timeout_s, then reading within it
    assert channel(api).send_timeout_s >= MAX_PARTS * one_request_s + (MAX_PARTS - 1) * PART_GAP_S


def _line(length: int, word: int) -> str:
    return (("w" * word + " ") * (length // (word + 1) + 1))[:length]


TEXTS = st.lists(
    st.builds(_line, st.integers(0, 5000), st.integers(1, 5000)), min_size=1, max_size=12
).map(lambda lines: "\n".join(lines)[: TelegramChannel.max_text_len])


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_any_text_up_to_the_limit_splits_into_at_most_max_parts_losing_nothing(
    text: str,
) -> None:
    parts = split_text(text)
    assert len(parts) <= MAX_PARTS
    assert all(0 < len(part) <= PART_LEN and part.strip() for part in parts)
    assert re.sub(r"\s", "", "".join(parts)) == re.sub(r"\s", "", text), "nothing lost, in order"
    for line in text.split("\n"):
        if line.strip() and len(line) <= PART_LEN:
            assert any(line in part.split("\n") for part in parts), "a line that fits is whole"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({}, "needs --config token=..."),
        ({"token": "12345"}, "config token is not a bot token"),
        ({"token": "bot:" + SECRET_HALF}, "config token is not a bot token"),
        ({"token": TOKEN + "/x"}, "config token is not a bot token"),
        ({"token": TOKEN, "api_base": "ftp://api.telegram.org"}, "config api_base must be"),
        ({"token": TOKEN, "timeout_s": "0"}, "config timeout_s must be"),
        ({"token": TOKEN, "secret": "x"}, "unknown config key(s) secret"),
    ],
)
def test_bad_config_is_refused_at_accounts_add_without_echoing_the_token(
    config: dict[str, str], says: str
) -> None:
    with pytest.raises(UserError) as caught:
        build_channel("telegram", "tg-1", config)
    assert "'tg-1'" in str(caught.value) and says in str(caught.value)
    assert SECRET_HALF not in str(caught.value) and "12345" not in str(caught.value)


def test_the_token_is_in_no_log_record_and_no_repr(
    api: BotApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    sender = channel(api)
    sender.send(MESSAGE)
    api.then(refusal(500, "Internal Server Error"))
    with pytest.raises(DeliveryUnknown):
        sender.send(MESSAGE)
    logged = [record.getMessage() for record in caplog.records]
    assert any("/bot7012345678:***/sendMessage" in line for line in logged), logged
    for where in (*logged, caplog.text, repr(sender)):
        assert TOKEN not in where and SECRET_HALF not in where
    assert "'token': '***'" in repr(sender)
    assert sender.redact(f"oops {TOKEN}") == "oops ***"
