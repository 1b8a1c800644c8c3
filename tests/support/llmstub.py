"""A real OpenAI-compatible HTTP server on loopback that plays a script: `with llm_stub() as s`.

`POST /v1/chat/completions` answers with the next scripted reply (an answer, a status such as
429 with `Retry-After`, 500, a slow answer, a garbage body) and records every request (path,
headers, JSON body) for assertions. Anything else is a 404. When the script runs out the stub
answers 599 and the test fails on the count of requests it asserts.

    with llm_stub(answer("reply", "早鸟价 699 元"), status(429, retry_after="2")) as stub:
        client = ChatClient(stub.base_url, "stub-model", "sk-test")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.serving import FakeHandler, serving_handler

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Scripted:
    """One response: status, body, headers; after waiting `delay_s` (cut short on stop)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    on_request: Callable[[], None] | None = None  # runs when the request arrives


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]  # lowercased names
    body: Any  # the parsed JSON body, or None

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body["messages"])


def completion(content: str | None, *, finish_reason: str = "stop", **message: Any) -> Scripted:
    """A 200 chat completion whose first choice says `content`."""
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": "stub-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish_reason,
            }
        ],
    }
    return Scripted(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def answer(action: str, text: str) -> Scripted:
    """A completion whose content is the JSON answer the prompt asks for."""
    return completion(json.dumps({"action": action, "text": text}, ensure_ascii=False))


def status(
    code: int, *, retry_after: str | None = None, error: str = "stub error", **headers: str
) -> Scripted:
    """An error status with an OpenAI-style error body and optional `Retry-After`."""
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = json.dumps({"error": {"message": error, "type": "stub", "code": code}}).encode()
    return Scripted(code, body, {"Content-Type": "application/json", **headers})


def garbage() -> Scripted:
    """A 200 whose body is not JSON at all."""
    return Scripted(200, b"<html>502 Bad Gateway</html>\x00\xff", {"Content-Type": "text/html"})


def slow(delay_s: float, then: Scripted) -> Scripted:
    """`then`, sent only after `delay_s` (a client with a shorter timeout has given up)."""
    return replace(then, delay_s=delay_s)


class LLMStub:
    """The running stub: its URL, the requests it got, and the rest of its script."""

    def __init__(self, script: list[Scripted]) -> None:
        self.requests: list[Recorded] = []
        self._script = script
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.base_url = ""

    def push(self, *replies: Scripted) -> None:
        with self._lock:
            self._script.extend(replies)

    def take(self, recorded: Recorded) -> Scripted:
        with self._lock:
            self.requests.append(recorded)
            if self._script:
                return self._script.pop(0)
        return status(599, error="the stub's script ran out")


def _handler(stub: LLMStub) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded = Recorded(self.path, headers, body)
            if self.path != COMPLETIONS_PATH:
                with stub._lock:
                    stub.requests.append(recorded)
                return self._send(status(404, error=f"no route {self.path}"))
            reply = stub.take(recorded)
            if reply.on_request is not None:
                reply.on_request()
            if reply.delay_s and stub.stopping.wait(reply.delay_s):
                return
            self._send(reply)

        def _send(self, reply: Scripted) -> None:
            self.respond(reply.status, reply.body, reply.headers)

    return Handler


@contextmanager
def llm_stub(*script: Scripted) -> Iterator[LLMStub]:
    """Serve the script on a free loopback port; `stub.base_url` ends in `/v1`."""
    stub = LLMStub(list(script))
    with serving_handler(_handler(stub), "llm-stub", stub.stopping.set) as url:
        stub.base_url = f"{url}/v1"
        yield stub
