"""A faithful local stand-in for the Telegram Bot API's `sendMessage` (the `telegram` channel's
peer), answering with Telegram's own bodies (core.telegram.org/bots/api#making-requests).

A real HTTP server on loopback serves `POST /bot{token}/sendMessage` for the bots it is given;
any other token gets 401 `Unauthorized`, a malformed path or another method 404 `Not Found`. It
counts every attempt, stores every accepted message per chat with increasing `message_id`s,
and answers what the test scripts:

    per chat (`refuse`, `block`, `forget`): every message to that chat, from any of the bots,
        gets this refusal, e.g. 403 "Forbidden: bot was blocked by the user", 400 "Bad
        Request: chat not found"
    one-off, for the next requests whatever their chat (`then`), in order:
        too_many_requests(7)    429 with parameters.retry_after = 7, nothing stored
        Reply(500, ...)         any refusal, nothing stored
        DROP                    close without answering, nothing stored
        ACCEPT_THEN_DROP        store the message, then close without answering
        Reply(200, {...})       store the message, answer this body (a relay that mangles it)
        Reply(delay_s=5)        store the message, answer late (a client's read timeout)

Telegram has no idempotency key, so a repeat is recognised by its content:
`duplicate_attempts` counts requests for a (chat_id, text) pair already accepted. Campaign texts
differ per recipient (each carries the learner's name and tracking link), and each recipient
gets one message per campaign, so any repeat of a pair is a message sent twice.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.serving import FakeHandler, serving_handler

BLOCKED = "Forbidden: bot was blocked by the user"
DEACTIVATED = "Forbidden: user is deactivated"
KICKED = "Forbidden: bot was kicked from the group chat"
NOT_MEMBER = "Forbidden: bot is not a member of the channel chat"
CHAT_NOT_FOUND = "Bad Request: chat not found"
TOO_LONG = "Bad Request: message is too long"
TEXT_EMPTY = "Bad Request: message text is empty"
PATH = re.compile(r"/bot(?P<token>[^/]*)/(?P<method>\w+)")
CHAT_ID = re.compile(r"-?\d{1,20}|@\w{5,32}")


def failure(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    """Telegram's error body (`parameters`: ResponseParameters, when there are any)."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `status` 200 accepts (stores) the message."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay_s: float = 0.0


ACCEPT_THEN_DROP = Reply(-1)
DROP = Reply(-2)


def too_many_requests(retry_after: int) -> Reply:
    return Reply(
        429, failure(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
    )


def refusal(code: int, description: str) -> Reply:
    return Reply(code, failure(code, description))


@dataclass(frozen=True)
class Attempt:
    """One POST, as received: `bot_id` when it called `sendMessage` with a valid token, the
    scripted one-off `reply` it took, if any, and when it came (`time.monotonic`)."""

    chat_id: str
    text: str
    body: dict[str, Any]
    bot_id: int | None
    reply: Reply | None
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Sent:
    message_id: int
    chat_id: str
    text: str
    bot_id: int


class BotApi:
    """The running fake: its base URL, what it got and what it accepted."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = frozenset(tokens)
        self.script: list[Reply] = []
        self.chats: dict[str, Reply] = {}
        self.attempts: list[Attempt] = []
        self.accepted: list[Sent] = []
        self.duplicate_attempts = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.url = ""  # the `api_base` to configure

    def then(self, *replies: Reply) -> None:
        with self.lock:
            self.script.extend(replies)

    def refuse(self, chat_id: str, code: int, description: str) -> None:
        with self.lock:
            self.chats[chat_id] = refusal(code, description)

    def block(self, chat_id: str) -> None:
        """The learner blocked the bot."""
        self.refuse(chat_id, 403, BLOCKED)

    def forget(self, chat_id: str) -> None:
        """No such chat (or one the bot never talked to)."""
        self.refuse(chat_id, 400, CHAT_NOT_FOUND)

    def sent_to(self, chat_id: str) -> list[str]:
        """The texts accepted for `chat_id`, in order."""
        with self.lock:
            return [s.text for s in self.accepted if s.chat_id == chat_id]

    def attempts_to(self, chat_id: str) -> int:
        with self.lock:
            return sum(a.chat_id == chat_id for a in self.attempts)

    def by_chat(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        with self.lock:
            for sent in self.accepted:
                found[sent.chat_id].append(sent.text)
        return dict(found)

    def _accept(self, chat_id: str, text: str, bot_id: int) -> Sent:
        with self.lock:
            sent = Sent(len(self.accepted) + 1, chat_id, text, bot_id)
            self.accepted.append(sent)
            return sent

    def _record(self, chat_id: str, text: str, body: dict[str, Any], bot_id: int | None) -> Reply:
        """Count the attempt and, for a valid bot's `sendMessage`, take the next one-off reply
        (the default: accept), in one step: the n-th such attempt took the n-th reply."""
        with self.lock:
            reply = self.script.pop(0) if bot_id is not None and self.script else None
            self.attempts.append(Attempt(chat_id, text, body, bot_id, reply))
            if any((s.chat_id, s.text) == (chat_id, text) for s in self.accepted):
                self.duplicate_attempts += 1
        return reply or Reply()

    def _message(self, sent: Sent) -> dict[str, Any]:
        """The `Message` object Telegram returns for a text sent to a private chat."""
        chat_id = int(sent.chat_id) if sent.chat_id.lstrip("-").isdigit() else -1001
        return {
            "ok": True,
            "result": {
                "message_id": sent.message_id,
                "from": {
                    "id": sent.bot_id, "is_bot": True, "first_name": "Siyu Test",
                    "username": "siyu_test_bot",
                },
                "chat": {"id": chat_id, "first_name": "学员", "type": "private"},
                "date": int(time.time()),
                "text": sent.text,
            },
        }  # fmt: skip


def _handler(api: BotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            chat_id, text = str(body.get("chat_id", "")), str(body.get("text", ""))
            route = PATH.fullmatch(self.path)
            found = route is not None and route["method"] == "sendMessage"
            token = route["token"] if route is not None else ""
            bot_id = int(token.partition(":")[0]) if found and token in api.tokens else None
            reply = api._record(chat_id, text, body, bot_id)
            if not found:
                return self._answer(refusal(404, "Not Found"))
            if bot_id is None:
                return self._answer(refusal(401, "Unauthorized"))
            self._send_message(chat_id, text, bot_id, reply)

        def _send_message(self, chat_id: str, text: str, bot_id: int, reply: Reply) -> None:
            if reply is DROP or reply.status not in (200, ACCEPT_THEN_DROP.status):
                return self._answer(reply)
            refused = _refused(api, chat_id, text)
            if refused is not None:
                return self._answer(refused)
            sent = api._accept(chat_id, text, bot_id)
            if reply is ACCEPT_THEN_DROP:
                return self._answer(DROP)
            self._answer(Reply(200, reply.body or api._message(sent), reply.delay_s))

        def _answer(self, reply: Reply) -> None:
            if reply is DROP:
                self.close_connection = True
                self.connection.close()
                return
            if reply.delay_s and api.stopping.wait(reply.delay_s):
                return
            payload = json.dumps(reply.body or {}).encode()
            self.respond(reply.status, payload, {"Content-Type": "application/json"})

    return Handler


def _refused(api: BotApi, chat_id: str, text: str) -> Reply | None:
    """What Telegram answers instead of sending: the chat's scripted refusal, an id that is
    no chat, an empty or too long text."""
    with api.lock:
        scripted = api.chats.get(chat_id)
    if scripted is not None:
        return scripted
    if CHAT_ID.fullmatch(chat_id) is None:
        return refusal(400, CHAT_NOT_FOUND)
    if not text.strip():
        return refusal(400, TEXT_EMPTY)
    if len(text) > 4096:
        return refusal(400, TOO_LONG)
    return None


@contextmanager
def running_bot_api(*tokens: str) -> Iterator[BotApi]:
    """Serve a Bot API for the bots with these tokens on a free loopback port."""
    api = BotApi(*tokens)
    with serving_handler(_handler(api), "telegram-bot-api", api.stopping.set) as url:
        api.url = url
        yield api
