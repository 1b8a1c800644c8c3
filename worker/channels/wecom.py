"""The `wecom` channel (企业微信): messages through WeCom's server API, in one of two modes.

- `mode=app` (the default): an application message (应用消息, `message/send`) from the corp's
  self-built app `agent_id` to a member of the corp; the contact's `external_id` is the
  member's userid. WeCom delivers it at once.
- `mode=customer`: a customer mass-send task (企业群发, `externalcontact/add_msg_template`)
  from the member `sender` to their customers; `external_id` is the customer's
  external_userid. WeCom delivers nothing until the member confirms the task in the WeCom
  client, so a send comes back unconfirmed and `confirmations(msgid)` asks
  `externalcontact/get_groupmsg_send_result` later what became of each customer, and
  `withdraw(msgid)` stops a task the member never sent (`cancel_groupmsg_send`). Each send is
  a task for one customer: every learner's text is rendered for them. `accounts add` gives
  these accounts the policy `wecom_customer`.

Configure with `--config corp_id=ww... --config secret=... --config agent_id=1000002`, and
optionally `mode=app|customer`, `sender=USERID` (required with, and only with,
`mode=customer`), `api_base=https://qyapi.weixin.qq.com` and `timeout_s=10`.

The access token is fetched on first use and cached until five minutes before its
`expires_in` ends, but for at least half of `expires_in` (a token answered with ten minutes
or less to live is not fetched again on every call); it is shared by every account and
thread of the process on the same app (api base, corp_id and secret). A refused token
(40014, 41001, 42001) is renewed once, by one thread while the others wait and reuse the new
one, and the call is tried once more. This happens here, not through `AuthExpired` and
`refresh_auth()`: a renewal must know which token was refused (another thread may have
replaced it already), and `confirmations` and `withdraw` are not called through the
dispatch's retry.

What WeCom answers (`errcode`, or the HTTP exchange) and what it becomes:

    0                       sent; in customer mode a task, unconfirmed. The recipient listed
                            in `invaliduser` (app) or `fail_list` (customer): unreachable.
                            A task answered without a `msgid`: DeliveryUnknown (it may
                            exist, but nothing can follow it up)
    -1 system busy          Transient: retried with backoff
    45009 frequency limit   RateLimited 60 s: a minute block lasts 60 s (an hour block 60 min;
                            each retry after a cooldown finds out)
    45033 concurrency       RateLimited 5 s: not a timed block; it lifts as calls in flight end
    40014, 41001, 42001     the token is renewed and the call tried once more; refused again:
                            SenderAtRisk
    81013, 84061, 40096     RecipientUnreachable: no such member in the app's range, no
                            customer relation, an invalid external_userid
    40001, 40013, 40056, 48002, 60011, 60020, 301002
                            SenderAtRisk: secret, corp id, agent id, API permission, visible
                            range or trusted IP are wrong; the account pauses
    any other errcode       ChannelError naming the errcode and errmsg: failed
    not connected           Transient: nothing reached WeCom
    a timeout or a dropped connection after the request was written, HTTP 5xx, a body that
    is not WeCom's          DeliveryUnknown for a send: nothing can look it up, so `unknown`
                            and never resent (gettoken, a results query or a withdrawal:
                            Transient)
    other HTTP statuses     SenderAtRisk: `api_base` is not WeCom's

A results query whose `next_cursor` repeats an earlier one, or that runs past
`MAX_RESULT_PAGES`, raises Transient: the task is asked about again next time, never in an
endless loop.

A text over WeCom's limit (2,048 UTF-8 bytes for `message/send`, 4,000 for
`add_msg_template`) fails before any request, naming the limit: a campaign text is never
split, since a customer takes one mass message a day and a member confirms every task.
`text_limit` is what campaigns check before sending: the most CJK characters (3 bytes each)
that fit, 682 for an application message and 1,333 for a customer task (`max_text_len`, the
class's figure, is the tighter).

The secret travels in the gettoken query and the access token in every query, which httpx
logs at INFO: a filter on the `httpx` logger masks both, and no error or repr shows them.

Sources (developer.work.weixin.qq.com/document/path/N): gettoken 91039, message/send 90236,
add_msg_template 92135, get_groupmsg_send_result 93338, cancel_groupmsg_send 97611, errcodes
90313, limits 90454.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx

from worker.channels.base import Channel, Confirmation, OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RateLimited,
    RecipientError,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.http import (
    NOT_SENT_ERRORS,
    hide_in_http_logs,
    http_client,
    http_url,
)
from worker.errors import UserError

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"
MODES = ("app", "customer")
AUTH_ERRCODES = frozenset({40014, 41001, 42001})
RECIPIENT_ERRCODES = frozenset({81013, 84061, 40096})
CONFIG_ERRCODES = frozenset({40001, 40013, 40056, 48002, 60011, 60020, 301002})
FREQUENCY_BLOCK_S = 60.0  # doc 90454: a minute block lasts 60 s
CONCURRENCY_WAIT_S = 5.0
TOKEN_EARLY_S = 300.0  # renew this long before `expires_in` runs out
REQUESTS_PER_SEND = 4  # gettoken and the call, then both again after a refused token
RESULTS_PAGE = 1000  # doc 93338: the largest `limit`
TASK_CUSTOMERS = 10_000  # doc 92135: external_userid holds at most 10,000
MAX_RESULT_PAGES = TASK_CUSTOMERS // RESULTS_PAGE + 1  # one more than a full task needs
MAX_TEXT_BYTES = {"app": 2048, "customer": 4000}
STATUS_WAITING, STATUS_SENT, STATUS_NOT_FRIEND, STATUS_ALREADY_GOT_ONE = 0, 1, 2, 3
_CREDENTIALS = re.compile(r"((?:access_token|corpsecret)=)[^&\s\"'>]+")


class WecomChannel(Channel):
    """Sends through WeCom's server API (module docstring)."""

    scheme: ClassVar[str] = "wecom"
    max_text_len: ClassVar[int] = MAX_TEXT_BYTES["app"] // 3
    default_policy: ClassVar[str] = "wecom"
    config_keys: ClassVar[frozenset[str]] = frozenset(
        {"corp_id", "secret", "agent_id", "mode", "sender", "api_base", "timeout_s"}
    )
    required_config: ClassVar[frozenset[str]] = frozenset({"corp_id", "secret", "agent_id"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"secret"})

    def __init__(
        self,
        account: str,
        config: Mapping[str, Any] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(account, config)
        self.corp_id = _text(account, "corp_id", self.config["corp_id"])
        self._secret = _text(account, "secret", self.config["secret"], shown=False)
        self.agent_id = _agent_id(account, self.config["agent_id"])
        self.mode = _mode(account, self.config.get("mode", "app"))
        self.sender = _sender(account, self.mode, self.config.get("sender"))
        self.api_base = http_url(account, "api_base", self.config.get("api_base", DEFAULT_API_BASE))
        self._client, request_s = http_client(self, transport=transport)
        self._send_timeout_s = REQUESTS_PER_SEND * request_s
        self._token = shared_token(self.api_base, self.corp_id, self._secret)
        hide_in_http_logs(_CREDENTIALS)

    @classmethod
    def text_limit(cls, config: Mapping[str, Any]) -> int:
        """The most CJK characters (3 UTF-8 bytes each) the mode's API takes: 682 in an
        application message, 1,333 in a customer task; `send` checks the bytes exactly."""
        mode = str(config.get("mode", "app"))
        return MAX_TEXT_BYTES.get(mode, MAX_TEXT_BYTES["app"]) // 3

    @property
    def send_timeout_s(self) -> float:
        return self._send_timeout_s

    @property
    def awaits_confirmation(self) -> bool:
        return self.mode == "customer"

    @property
    def preferred_policy(self) -> str | None:
        """Tasks a member confirms by hand: `rate_limits/wecom_customer.toml`, not the app's."""
        return "wecom_customer" if self.mode == "customer" else None

    def send(self, message: OutboundMessage) -> SendResult:
        """An application message (app mode) or a one-customer task (customer mode)."""
        self._check_length(message)
        if self.mode == "app":
            return self._send_app(message)
        return self._send_task(message)

    def confirmations(self, message_id: str) -> dict[str, Confirmation]:
        """Every customer of the task `message_id` with what became of them, read through all
        pages of `get_groupmsg_send_result`."""
        if self.mode != "customer":
            return super().confirmations(message_id)
        found: dict[str, Confirmation] = {}
        cursor, used = "", set[str]()
        for _ in range(MAX_RESULT_PAGES):
            body = {"msgid": message_id, "userid": self.sender, "limit": RESULTS_PAGE}
            page = self._call("externalcontact/get_groupmsg_send_result", body | {"cursor": cursor})
            for row in page.get("send_list") or []:
                if isinstance(row, dict) and isinstance(row.get("external_userid"), str):
                    found[row["external_userid"]] = self._confirmation(message_id, row)
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                return found
            if cursor in used:  # WeCom would page in a circle: ask again next time
                raise Transient(
                    f"{self._who()}: get_groupmsg_send_result repeated an earlier next_cursor"
                )
            used.add(cursor)
        raise Transient(
            f"{self._who()}: get_groupmsg_send_result gave more than {MAX_RESULT_PAGES} pages "
            f"of {RESULTS_PAGE}, more than a task of {TASK_CUSTOMERS:,} customers fills"
        )

    def withdraw(self, message_id: str) -> None:
        """Stop the task `message_id`, so the member can no longer send it (停止企业群发:
        `POST /cgi-bin/externalcontact/cancel_groupmsg_send` {"msgid": ...}, doc 97611).
        Customers it already reached keep it: WeCom recalls nothing."""
        if self.mode != "customer":
            super().withdraw(message_id)  # raises: an application message is never held
        self._call("externalcontact/cancel_groupmsg_send", {"msgid": message_id})

    def close(self) -> None:
        self._client.close()

    def _check_length(self, message: OutboundMessage) -> None:
        size, limit = len(message.text.encode()), MAX_TEXT_BYTES[self.mode]
        if size > limit:
            api = "message/send" if self.mode == "app" else "add_msg_template"
            raise ChannelError(
                f"{self._who()}: the text is {size:,} UTF-8 bytes; WeCom takes at most "
                f"{limit:,} in {api}"
            )

    def _send_app(self, message: OutboundMessage) -> SendResult:
        body = {
            "touser": message.to,
            "msgtype": "text",
            "agentid": self.agent_id,
            "text": {"content": message.text},
            # WeCom drops an identical request (same recipient and text) within 30 minutes.
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        }
        answer = self._call("message/send", body, sends=True)
        invalid = str(answer.get("invaliduser") or "").lower().split("|")
        if message.to.lower() in invalid:  # WeCom lower-cases the userids it returns
            raise RecipientUnreachable(
                f"{self._who()}: message/send listed the recipient in invaliduser"
            )
        return SendResult(str(answer.get("msgid") or message.idempotency_key))

    def _send_task(self, message: OutboundMessage) -> SendResult:
        body = {
            "chat_type": "single",
            "external_userid": [message.to],
            "sender": self.sender,
            "text": {"content": message.text},
        }
        answer = self._call("externalcontact/add_msg_template", body, sends=True)
        if message.to in {str(u) for u in answer.get("fail_list") or []}:
            raise RecipientUnreachable(
                f"{self._who()}: add_msg_template listed the recipient in fail_list"
            )
        msgid = answer.get("msgid")
        if not isinstance(msgid, str) or not msgid:
            raise DeliveryUnknown(
                f"{self._who()}: add_msg_template answered errcode 0 without a msgid: the task "
                "may exist, but siyu cannot follow it up"
            )
        return SendResult(msgid, confirmed=False)

    def _confirmation(self, msgid: str, row: Mapping[str, Any]) -> Confirmation:
        status = row.get("status")
        if status == STATUS_WAITING:
            return None
        if status == STATUS_SENT:
            return SendResult(msgid)
        if status == STATUS_NOT_FRIEND:
            return RecipientUnreachable(
                f"{self._who()}: not sent, the customer is not the sender's friend (status 2)"
            )
        if status == STATUS_ALREADY_GOT_ONE:
            return RecipientError(
                f"{self._who()}: not sent, the customer already received "
                "another mass message (status 3)"
            )
        return ChannelError(f"{self._who()}: get_groupmsg_send_result status {status!r}")

    def _call(self, api: str, body: Mapping[str, Any], *, sends: bool = False) -> dict[str, Any]:
        """POST `body` to `/cgi-bin/{api}` with the shared token; a refused token is renewed
        once and the call tried once more. Returns the answer of errcode 0, else raises."""
        token = self._token.current(self._fetch_token)
        answer = self._post(api, token, body, sends=sends)
        if answer["errcode"] in AUTH_ERRCODES:
            token = self._token.renewed(token, self._fetch_token)
            answer = self._post(api, token, body, sends=sends)
            if answer["errcode"] in AUTH_ERRCODES:
                raise SenderAtRisk(
                    f"{self._who()}: {api} refused a freshly renewed token ({self._code(answer)})"
                )
        if answer["errcode"] != 0:
            raise self._error(api, answer)
        return answer

    def _post(
        self, api: str, token: str, body: Mapping[str, Any], *, sends: bool
    ) -> dict[str, Any]:
        # Raw UTF-8: WeCom refuses \\uXXXX escapes (errcode 40033).
        content = json.dumps(body, ensure_ascii=False).encode()
        url = f"{self.api_base}/cgi-bin/{api}"
        try:
            response = self._client.post(
                url,
                params={"access_token": token},
                content=content,
                headers={"content-type": "application/json"},
            )
        except NOT_SENT_ERRORS as exc:
            raise Transient(f"{self._who()}: WeCom unreachable ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            unknown = DeliveryUnknown if sends else Transient
            raise unknown(f"{self._who()}: {api} gave no answer ({type(exc).__name__})") from exc
        return self._answer(api, response, sends=sends)

    def _fetch_token(self) -> tuple[str, float]:
        """A new access token and how many seconds it lives (gettoken, doc 91039)."""
        params = {"corpid": self.corp_id, "corpsecret": self._secret}
        try:
            response = self._client.get(f"{self.api_base}/cgi-bin/gettoken", params=params)
        except httpx.TransportError as exc:
            raise Transient(f"{self._who()}: gettoken failed ({type(exc).__name__})") from exc
        answer = self._answer("gettoken", response, sends=False)
        if answer["errcode"] != 0:
            error = self._error("gettoken", answer)
            if isinstance(error, Transient | RateLimited):
                raise error
            raise SenderAtRisk(
                f"{self._who()}: gettoken refused the account's corp_id or "
                f"secret ({self._code(answer)})"
            )
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise Transient(f"{self._who()}: gettoken answered no access_token")
        return token, float(expires_in)

    def _answer(self, api: str, response: httpx.Response, *, sends: bool) -> dict[str, Any]:
        """The JSON answer with an integer errcode; anything else raises."""
        status = response.status_code
        unknown = DeliveryUnknown if sends else Transient
        if status >= 500:
            raise unknown(f"{self._who()}: {api} answered HTTP {status}")
        if status != 200:
            raise SenderAtRisk(f"{self._who()}: {api} answered HTTP {status}; is api_base WeCom's?")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
            raise unknown(f"{self._who()}: {api} answered no errcode")
        return answer

    def _error(self, api: str, answer: Mapping[str, Any]) -> ChannelError:
        code, what = answer["errcode"], f"{self._who()}: {api} {self._code(answer)}"
        if code == -1:
            return Transient(what)
        if code == 45009:
            return RateLimited(what, retry_after_s=FREQUENCY_BLOCK_S)
        if code == 45033:
            return RateLimited(what, retry_after_s=CONCURRENCY_WAIT_S)
        if code in RECIPIENT_ERRCODES:
            return RecipientUnreachable(what)
        if code in CONFIG_ERRCODES:
            return SenderAtRisk(f"{what}: check the account's configuration")
        return ChannelError(what)

    def _code(self, answer: Mapping[str, Any]) -> str:
        errmsg = self.redact(_CREDENTIALS.sub(r"\1***", str(answer.get("errmsg") or "")))
        return f"errcode {answer['errcode']} ({errmsg[:200]})"

    def _who(self) -> str:
        return f"wecom account {self.account!r}"


class SharedToken:
    """One app's access token, shared by every account and thread of the process. Fetches
    happen under the lock, so threads that need a token at once cause one gettoken."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._fresh_until = 0.0

    def current(self, fetch: Callable[[], tuple[str, float]]) -> str:
        """The cached token, fetched first when there is none or it is about to expire."""
        with self._lock:
            if self._value is None or self._clock() >= self._fresh_until:
                self._keep(*fetch())
            assert self._value is not None
            return self._value

    def renewed(self, refused: str, fetch: Callable[[], tuple[str, float]]) -> str:
        """A token other than `refused`: another thread's renewal when it happened meanwhile."""
        with self._lock:
            if self._value in (None, refused) or self._clock() >= self._fresh_until:
                self._keep(*fetch())
            assert self._value is not None
            return self._value

    def _keep(self, token: str, expires_in_s: float) -> None:
        self._value = token
        # Early by TOKEN_EARLY_S, but never by more than half: a short `expires_in` (a token
        # past its prime) would otherwise be stale on arrival and fetched again every call.
        fresh_s = max(expires_in_s - TOKEN_EARLY_S, expires_in_s / 2)
        self._fresh_until = self._clock() + fresh_s


_TOKENS: dict[tuple[str, str, str], SharedToken] = {}
_TOKENS_LOCK = threading.Lock()


def shared_token(api_base: str, corp_id: str, secret: str) -> SharedToken:
    """The process's token holder for one app (keyed by a digest: the secret is not kept)."""
    key = (api_base, corp_id, hashlib.sha256(secret.encode()).hexdigest())
    with _TOKENS_LOCK:
        return _TOKENS.setdefault(key, SharedToken())


def _text(account: str, key: str, value: object, *, shown: bool = True) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    got = f", got {value!r}" if shown else ""
    raise UserError(f"account {account!r}: config {key} must be a non-empty string{got}")


def _agent_id(account: str, value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) <= 0:
        raise UserError(
            f"account {account!r}: config agent_id must be the app's AgentId, a positive "
            f"integer, got {value!r}"
        )
    return int(text)


def _mode(account: str, value: object) -> str:
    if value not in MODES:
        raise UserError(
            f"account {account!r}: config mode must be one of {', '.join(MODES)}, got {value!r}"
        )
    return str(value)


def _sender(account: str, mode: str, value: object) -> str:
    if mode == "app":
        if value is not None:
            raise UserError(
                f"account {account!r}: config sender is only for mode=customer (the member "
                "whose customers are messaged); remove it or set mode=customer"
            )
        return ""
    if value is None:
        raise UserError(
            f"account {account!r}: mode=customer needs --config sender=USERID (the member "
            "whose customers are messaged)"
        )
    return _text(account, "sender", value)
