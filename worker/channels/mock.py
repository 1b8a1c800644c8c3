"""The `mock` channel: an account on the mock platform (`siyu mock-platform`) over HTTP.

Configure with `--config url=http://127.0.0.1:8900` and optionally `timeout_s=10` and
`remote_account=NAME` (the platform-side name, when it differs from the siyu account name).
Errors never carry the message text or the recipient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

import httpx

from worker.channels.base import Channel, OutboundMessage, SendResult
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
from worker.errors import UserError

CONNECT_TIMEOUT_S = 3.0
DEFAULT_TIMEOUT_S = 10.0

# Failures before the request could reach the platform: nothing was sent.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The platform's own refusals before processing (its injected 500s, 503 overloaded).
NOT_PROCESSED_STATUSES = (500, 503)


class MockChannel(Channel):
    """Sends through the mock platform's `POST /v1/accounts/{account}/messages`."""

    scheme: ClassVar[str] = "mock"
    max_text_len: ClassVar[int] = 2000
    default_policy: ClassVar[str] = "mock"
    supports_idempotency_lookup: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str]] = frozenset({"url", "timeout_s", "remote_account"})
    required_config: ClassVar[frozenset[str]] = frozenset({"url"})

    def __init__(
        self,
        account: str,
        config: Mapping[str, Any] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(account, config)
        base_url = _base_url(account, self.config["url"])
        timeout_s = _timeout_s(account, self.config.get("timeout_s", DEFAULT_TIMEOUT_S))
        connect_s = min(CONNECT_TIMEOUT_S, timeout_s)
        self._send_timeout_s = connect_s + timeout_s
        self.remote_account = _remote_account(account, self.config.get("remote_account"))
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=connect_s),
            transport=transport,
            headers={"User-Agent": "siyu-mock-channel"},
        )

    @property
    def send_timeout_s(self) -> float:
        """Connecting, then each further phase (write, read) within the configured timeout."""
        return self._send_timeout_s

    def send(self, message: OutboundMessage) -> SendResult:
        path = f"/v1/accounts/{quote(self.remote_account, safe='')}/messages"
        body = {"to": message.to, "text": message.text, "idempotency_key": message.idempotency_key}
        try:
            response = self._client.post(path, json=body)
        except NOT_SENT_ERRORS as exc:
            raise Transient(f"{self._who()}: platform unreachable ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise DeliveryUnknown(
                f"{self._who()}: connection lost after sending ({type(exc).__name__})"
            ) from exc
        return self._send_result(response)

    def lookup(self, idempotency_key: str) -> SendResult | None:
        try:
            response = self._client.get(f"/v1/messages/{quote(idempotency_key, safe='')}")
        except httpx.TransportError as exc:
            raise Transient(f"{self._who()}: lookup failed ({type(exc).__name__})") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise Transient(f"{self._who()}: lookup answered HTTP {response.status_code}")
        message_id = _message_id(response)
        if message_id is None:
            raise Transient(f"{self._who()}: lookup answered without a message_id")
        return SendResult(message_id)

    def close(self) -> None:
        self._client.close()

    def _send_result(self, response: httpx.Response) -> SendResult:
        if response.status_code == 200:
            message_id = _message_id(response)
            if message_id is None:
                # Accepted, but we cannot tell under which id: let lookup settle it.
                raise DeliveryUnknown(f"{self._who()}: HTTP 200 without a message_id")
            return SendResult(message_id)
        self._raise_for(response)

    def _raise_for(self, response: httpx.Response) -> NoReturn:
        status, error = response.status_code, _error_code(response)
        what = f"{self._who()}: HTTP {status}" + (f" {error}" if error else "")
        if status == 429:
            raise RateLimited(what, retry_after_s=_retry_after_s(response))
        if status == 403:
            raise (AccountBanned if error == "account_banned" else SenderAtRisk)(what)
        if status == 404 and error == "recipient_not_found":
            raise RecipientUnreachable(what)
        if status == 401:
            raise AuthExpired(what)
        if status in NOT_PROCESSED_STATUSES:
            raise Transient(what)
        if status >= 500:  # a gateway's 502/504: the platform behind it may have accepted it
            raise DeliveryUnknown(what)
        raise ChannelError(what)

    def _who(self) -> str:
        return f"mock account {self.account!r}"


def _base_url(account: str, value: object) -> str:
    try:
        url = httpx.URL(value) if isinstance(value, str) else None
    except httpx.InvalidURL:
        url = None
    bad_port = url is not None and url.port is not None and not 0 < url.port < 65536
    if url is None or url.scheme not in ("http", "https") or not url.host or bad_port:
        raise UserError(
            f"account {account!r}: config url must be an http(s) URL with a host, got {value!r}"
        )
    return str(value).rstrip("/")


def _timeout_s(account: str, value: object) -> float:
    timeout_s = _as_seconds(value)
    if timeout_s is None or timeout_s <= 0:
        raise UserError(
            f"account {account!r}: config timeout_s must be a positive number, got {value!r}"
        )
    return timeout_s


def _remote_account(account: str, value: object) -> str:
    if value is None:
        return account
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"account {account!r}: config remote_account must be a non-empty name")
    return value.strip()


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _message_id(response: httpx.Response) -> str | None:
    value = _json_field(response, "message_id")
    return value if isinstance(value, str) and value else None


def _error_code(response: httpx.Response) -> str | None:
    """The platform's short error code; never the rest of the body, which may echo input."""
    value = _json_field(response, "error")
    return value[:80] if isinstance(value, str) else None


def _retry_after_s(response: httpx.Response) -> float:
    """The wait from the body's `retry_after`, else the `Retry-After` header, else 1 s."""
    for value in (_json_field(response, "retry_after"), response.headers.get("Retry-After")):
        seconds = _as_seconds(value)
        if seconds is not None and seconds >= 0:
            return seconds
    return 1.0


def _as_seconds(value: object) -> float | None:
    """A finite number of seconds from a number or numeric string; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None
