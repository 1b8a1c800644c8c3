"""A faithful local stand-in for an operator's message gateway (the `webhook` channel's peer).

It runs a real HTTP server on loopback, verifies every request's Standard Webhooks signature
with the official `standardwebhooks` library (as the CONTRACT tells gateways to), counts every
attempt per idempotency key, and answers what the test scripts, in order:

    Reply(200, {"message_id": ...})   accept (the default when the script is empty)
    Reply(429, headers={"Retry-After": "7"}) and any other status: refuse, store nothing
    ACCEPT_THEN_DROP                  store the message, then close without answering
    DROP                              close without answering, store nothing
    Reply(..., delay_s=5)             answer late (a client timeout)

`GET /sent/{key}` is the lookup: 200 with the stored message id, 404 when nothing was stored
under that key. `duplicate_attempts` counts POSTs for a key already stored: exactly-once is
proven by it being 0, every attempt counted, not by what was stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.serving import FakeHandler, serving_handler


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


ACCEPT_THEN_DROP = Reply(-1)
DROP = Reply(-2)


@dataclass
class Attempt:
    key: str
    headers: dict[str, str]
    body: dict[str, Any]


class Gateway:
    """The running gateway: its URLs, what it got and what it stored."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.script: list[Reply] = []
        self.attempts: list[Attempt] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.lookups: list[str] = []
        self.bad_signatures = 0
        self.duplicate_attempts = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.base = ""

    @property
    def url(self) -> str:
        return f"{self.base}/send"

    @property
    def lookup_url(self) -> str:
        return f"{self.base}/sent/{{key}}"

    def then(self, *replies: Reply) -> None:
        with self.lock:
            self.script.extend(replies)

    def _next(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if self.script else Reply()


def _handler(gw: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not self._verified(raw, headers) or self.path != "/send":
                return self._answer(Reply(401 if self.path == "/send" else 404))
            body = json.loads(raw)
            key = headers.get("webhook-id", "")
            reply, stored_id = gw._next(), ""
            with gw.lock:
                gw.attempts.append(Attempt(key, headers, body))
                if key in gw.stored:
                    gw.duplicate_attempts += 1
                if reply.status in (200, 201, 202, 204) or reply is ACCEPT_THEN_DROP:
                    gw.stored.setdefault(key, {**body, "message_id": f"gw-{len(gw.stored) + 1}"})
                    stored_id = gw.stored[key]["message_id"]
            if reply is ACCEPT_THEN_DROP or reply is DROP:
                self.close_connection = True
                self.connection.close()
                return
            if reply.status == 200 and reply.body is None:
                reply = Reply(200, {"message_id": stored_id}, reply.headers, reply.delay_s)
            self._answer(reply)

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not self.path.startswith("/sent/") or not self._verified(b"", headers):
                return self._answer(Reply(401))
            key = unquote(self.path[len("/sent/") :])
            with gw.lock:
                gw.lookups.append(key)
                found = gw.stored.get(key)
            if found is None:
                return self._answer(Reply(404, {"error": "not_found"}))
            self._answer(Reply(200, {"message_id": found["message_id"]}))

        def _verified(self, raw: bytes, headers: dict[str, str]) -> bool:
            try:
                gw.verifier.verify(raw, headers, json_parse=False)
            except WebhookVerificationError:
                with gw.lock:
                    gw.bad_signatures += 1
                return False
            return True

        def _answer(self, reply: Reply) -> None:
            if reply.delay_s and gw.stopping.wait(reply.delay_s):
                return
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.respond(reply.status, payload, reply.headers)

    return Handler


@contextmanager
def running_gateway(secret: str) -> Iterator[Gateway]:
    """Serve a gateway verifying `secret` on a free loopback port."""
    gw = Gateway(secret)
    with serving_handler(_handler(gw), "gateway", gw.stopping.set) as url:
        gw.base = url
        yield gw
