"""A faithful local stand-in for WeCom's server API (qyapi.weixin.qq.com), for the `wecom` channel.

A real HTTP server on loopback speaking WeCom's JSON: `GET /cgi-bin/gettoken` (the corp id and
secret checked, a fresh token each time, `expires_in` settable), `POST /cgi-bin/message/send`,
`/cgi-bin/externalcontact/add_msg_template`, `/get_groupmsg_send_result` (paged by
`page_size`, so tests cross a cursor) and `/cancel_groupmsg_send` (doc 97611: the task can no
longer be sent; an unknown msgid answers 40097, WeCom documents no code of its own), every call
but gettoken checking its `access_token` (missing 41001, unknown 40014, expired 42001). Known
recipients are `users` (member userids, app mode) and `customers` (the sender's external
userids, customer mode).

What a test can script, per API, in order (`then("message/send", Errcode(45009), PASS)`):

    PASS                 answer as WeCom would (the default when the script is empty)
    Errcode(code)        answer that errcode with WeCom's errmsg (or one given), store nothing
    Answer(body)         answer exactly this JSON body, store nothing (POST APIs)
    HttpStatus(502)      answer an HTTP error, store nothing
    DROP                 close without answering, store nothing
    ACCEPT_THEN_DROP     store the message, then close without answering
    Late(seconds)        answer normally, that much later (a client timeout)
    EXPIRE               expire every token issued so far, then answer (so: 42001)

A step is taken by the next call whose token passes the check (EXPIRE: by the next call).
`expire_tokens()` expires them at once; `hold_refused(n)` makes the next `n` calls bearing an
expired token wait for each other before they are answered, so they all hold the old token
when the renewals start. `confirm(msgid, {external_userid: status})` plays the member
confirming a task (1 sent, 2 not a friend, 3 already got another mass message); a withdrawn
task (`Task.withdrawn`) can no longer be confirmed, so its customers stay at 0.

Every attempt is recorded. WeCom has no idempotency key, and campaign texts are per
recipient, so `duplicate_attempts` counts messages sent for a (recipient, text) pair the fake
had already accepted: exactly-once is proven by it being 0.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.serving import FakeHandler, serving_handler

ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40033: "invalid charactors in request",
    40056: "invalid agentid",
    40096: "invalid external userid",
    40097: "invalid args",
    41001: "access_token missing",
    42001: "access_token expired",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    48002: "api forbidden",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
    84061: "not external contact",
    301002: "not allow operate another agent with this accesstoken.",
}
# A JSON \uXXXX escape (not an escaped backslash followed by "u"): WeCom refuses them.
UNICODE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[0-9a-fA-F]{4}")


@dataclass(frozen=True)
class Errcode:
    code: int
    errmsg: str | None = None  # None: WeCom's own


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]


@dataclass(frozen=True)
class HttpStatus:
    status: int


@dataclass(frozen=True)
class Late:
    delay_s: float


PASS, DROP, ACCEPT_THEN_DROP, EXPIRE = "pass", "drop", "accept_then_drop", "expire"
Step = Errcode | Answer | HttpStatus | Late | str


@dataclass
class Attempt:
    api: str
    token: str | None
    body: dict[str, Any]
    errcode: int | None = None  # None: no answer, or an HTTP error


@dataclass
class Task:
    """A customer mass-send task: its sender, text and each customer's status."""

    sender: str
    content: str
    status: dict[str, int] = field(default_factory=dict)
    withdrawn: bool = False  # cancel_groupmsg_send: the member can no longer send it


class WecomApi:
    """The running fake: its base URL, what it got, issued and stored."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        agent_id: int,
        users: set[str],
        customers: set[str],
        sender: str,
    ) -> None:
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.users, self.customers, self.sender = users, customers, sender
        self.expires_in = 7200
        self.page_size = 1000
        # Older WeCom answered an invalid sole recipient with errcode 0 and `invaliduser`;
        # the current doc 90236 says 81013.
        self.legacy_invaliduser = False
        self.tokens: dict[str, bool] = {}  # token -> still valid
        self.token_fetches = 0
        self.attempts: list[Attempt] = []
        self.messages: list[dict[str, Any]] = []  # accepted application messages
        self.tasks: dict[str, Task] = {}
        self.duplicate_attempts = 0
        self.script: dict[str, list[Step]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.base = ""
        self._accepted: set[tuple[str, str]] = set()
        self._refused_barrier: threading.Barrier | None = None

    def then(self, api: str, *steps: Step) -> None:
        with self.lock:
            self.script.setdefault(api, []).extend(steps)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, False)

    def hold_refused(self, parties: int) -> None:
        self._refused_barrier = threading.Barrier(parties, timeout=10)

    def issued(self) -> list[str]:
        with self.lock:
            return list(self.tokens)

    def calls(self, api: str) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.api == api]

    def confirm(self, msgid: str, statuses: dict[str, int] | None = None) -> None:
        """The member confirms the task: every customer sent, unless `statuses` says else.
        A withdrawn task is no longer in the member's client: nothing changes."""
        with self.lock:
            task = self.tasks[msgid]
            if task.withdrawn:
                return
            for customer in task.status:
                task.status[customer] = (statuses or {}).get(customer, 1)

    def add_task(self, customers: list[str], content: str = "群发") -> str:
        """A task for many customers of `sender`, made outside siyu (an admin's 企业群发 in
        the admin console): siyu sends one customer a task, so only this crosses pages."""
        with self.lock:
            msgid = f"msgGCA{len(self.tasks) + 1:06d}"
            self.tasks[msgid] = Task(self.sender, content, dict.fromkeys(customers, 0))
        return msgid

    def _next(self, api: str, only: Step | None = None) -> Step:
        """The next scripted step for `api` (PASS when none); with `only`, taken only if it is
        that step."""
        with self.lock:
            steps = self.script.get(api)
            if not steps or (only is not None and steps[0] != only):
                return PASS
            return steps.pop(0)

    def _token_error(self, token: str | None) -> int:
        with self.lock:
            if not token:
                return 41001
            if token not in self.tokens:
                return 40014
            return 0 if self.tokens[token] else 42001

    def _new_token(self) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = True
        return token

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        """message/send (doc 90236) for a valid token."""
        if body.get("agentid") != self.agent_id:
            return error(301002)
        content = str(body.get("text", {}).get("content", ""))
        wanted = str(body.get("touser", "")).split("|")
        with self.lock:
            good = [u for u in wanted if u in self.users]
            bad = "|".join(u.lower() for u in wanted if u not in self.users)
            if not good and not self.legacy_invaliduser:
                return {**error(81013), "invaliduser": bad}
            msgid = f"msg{len(self.messages) + 1:06d}"
            for user in good:
                self._accept(user, content)
                self.messages.append({"to": user, "content": content, "msgid": msgid})
        return {"errcode": 0, "errmsg": "ok", "invaliduser": bad, "msgid": msgid}

    def _add_task(self, body: dict[str, Any]) -> dict[str, Any]:
        """add_msg_template (doc 92135) for a valid token."""
        content = str(body.get("text", {}).get("content", ""))
        wanted = [str(u) for u in body.get("external_userid", [])]
        with self.lock:
            good = [u for u in wanted if u in self.customers]
            if not good:
                return {**error(40096), "fail_list": []}
            msgid = f"msgGCA{len(self.tasks) + 1:06d}"
            self.tasks[msgid] = Task(str(body.get("sender")), content, dict.fromkeys(good, 0))
            for customer in good:
                self._accept(customer, content)
        fail_list = [u for u in wanted if u not in good]
        return {"errcode": 0, "errmsg": "ok", "fail_list": fail_list, "msgid": msgid}

    def _results(self, body: dict[str, Any]) -> dict[str, Any]:
        """get_groupmsg_send_result (doc 93338) for a valid token: one page."""
        with self.lock:
            task = self.tasks.get(str(body.get("msgid")))
            if task is None or task.sender != body.get("userid"):
                rows: list[tuple[str, int]] = []
            else:
                rows = list(task.status.items())
            start = int(body.get("cursor") or 0)
            size = min(int(body.get("limit") or 500), self.page_size)
            page = rows[start : start + size]
            sender = task.sender if task else ""
        more = start + size < len(rows)
        send_list = [
            {"external_userid": u, "userid": sender, "status": s}
            | ({"send_time": int(time.time())} if s == 1 else {})
            for u, s in page
        ]
        return {"errcode": 0, "errmsg": "ok", "next_cursor": str(start + size) if more else "",
                "send_list": send_list}  # fmt: skip

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        """cancel_groupmsg_send (doc 97611) for a valid token: what was sent stays sent."""
        with self.lock:
            task = self.tasks.get(str(body.get("msgid")))
            if task is None:
                return error(40097)
            task.withdrawn = True
        return {"errcode": 0, "errmsg": "ok"}

    def _accept(self, to: str, content: str) -> None:
        self._accepted.add((to, content))

    def _duplicates(self, api: str, body: dict[str, Any]) -> int:
        """How many recipients of this request already got this text."""
        content = str(body.get("text", {}).get("content", ""))
        if api == "message/send":
            wanted = str(body.get("touser", "")).split("|")
        elif api == "externalcontact/add_msg_template":
            wanted = [str(u) for u in body.get("external_userid", [])]
        else:
            return 0
        with self.lock:
            return sum((to, content) in self._accepted for to in wanted)


def error(code: int, errmsg: str | None = None) -> dict[str, Any]:
    """WeCom's error body: the errmsg carries a hint and where to look the code up."""
    errmsg = errmsg or (
        f"{ERRMSG.get(code, 'unknown error')}, hint: [{secrets.token_hex(8)}], from ip: "
        f"127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
    )
    return {"errcode": code, "errmsg": errmsg}


APIS = {
    "/cgi-bin/message/send": ("message/send", WecomApi._send),
    "/cgi-bin/externalcontact/add_msg_template": (
        "externalcontact/add_msg_template",
        WecomApi._add_task,
    ),
    "/cgi-bin/externalcontact/get_groupmsg_send_result": (
        "externalcontact/get_groupmsg_send_result",
        WecomApi._results,
    ),
    "/cgi-bin/externalcontact/cancel_groupmsg_send": (
        "externalcontact/cancel_groupmsg_send",
        WecomApi._cancel,
    ),
}


def _handler(api: WecomApi) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/cgi-bin/gettoken":
                return self._answer({}, 404)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            step = api._next("gettoken")
            with api.lock:
                api.token_fetches += 1
                attempt = Attempt("gettoken", None, {"corpid": query.get("corpid")})
                api.attempts.append(attempt)
                if query.get("corpid") != api.corp_id:
                    answer = error(40013)
                elif query.get("corpsecret") != api.secret:
                    answer = error(40001)
                else:
                    answer = {"errcode": 0, "errmsg": "ok"}
            if isinstance(step, Errcode):
                answer = error(step.code, step.errmsg)
            elif answer["errcode"] == 0 and not isinstance(step, HttpStatus) and step != DROP:
                with api.lock:
                    token = api._new_token()
                answer |= {"access_token": token, "expires_in": api.expires_in}
            attempt.errcode = answer.get("errcode")
            self._reply(step, answer)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if url.path not in APIS:
                return self._answer({}, 404)
            name, serve = APIS[url.path]
            token = parse_qs(url.query).get("access_token", [None])[0]
            body = json.loads(raw)
            if api._next(name, only=EXPIRE) == EXPIRE:
                api.expire_tokens()
            attempt = Attempt(name, token, body)
            with api.lock:
                api.attempts.append(attempt)
            repeated = api._duplicates(name, body)
            with api.lock:
                api.duplicate_attempts += repeated
            refused = api._token_error(token)
            # The token is checked first; a scripted step waits for a call that passes it.
            step = PASS if refused else api._next(name)
            answer = self._refusal(refused) if refused else self._answer_for(step, raw, body, serve)
            attempt.errcode = answer.get("errcode") if answer else None
            self._reply(step, answer)

        def _refusal(self, refused: int) -> dict[str, Any]:
            held = api._refused_barrier
            if refused == 42001 and held is not None:
                held.wait()  # every held call now carries the old token
                api._refused_barrier = None
            return error(refused)

        def _answer_for(
            self, step: Step, raw: bytes, body: dict[str, Any], serve: Any
        ) -> dict[str, Any]:
            if isinstance(step, Errcode):
                return error(step.code, step.errmsg)
            if isinstance(step, Answer):
                return step.body
            if isinstance(step, HttpStatus) or step == DROP:
                return {}
            if UNICODE_ESCAPE.search(raw):
                return error(40033)
            answer: dict[str, Any] = serve(api, body)
            return answer

        def _reply(self, step: Step, answer: dict[str, Any]) -> None:
            if step in (DROP, ACCEPT_THEN_DROP):
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(step, Late) and api.stopping.wait(step.delay_s):
                return
            self._answer(answer, step.status if isinstance(step, HttpStatus) else 200)

        def _answer(self, answer: dict[str, Any], status: int) -> None:
            payload = json.dumps(answer, ensure_ascii=False).encode()
            self.respond(status, payload, {"Content-Type": "application/json; charset=UTF-8"})

    return Handler


@contextmanager
def running_wecom(
    *,
    corp_id: str = "",
    secret: str = "",
    agent_id: int = 1000002,
    users: set[str] | None = None,
    customers: set[str] | None = None,
    sender: str = "zhangsan",
) -> Iterator[WecomApi]:
    """Serve a fake WeCom for one corp and app on a free loopback port. The corp id is fresh
    by default: a process keeps the token of an (api base, corp id, secret) across tests, and
    ports are reused."""
    corp_id, secret = corp_id or f"ww{secrets.token_hex(8)}", secret or secrets.token_urlsafe(32)
    api = WecomApi(corp_id, secret, agent_id, users or set(), customers or set(), sender)
    with serving_handler(_handler(api), "wecom", api.stopping.set) as url:
        api.base = url
        yield api
