"""The `mock` channel: an account on the mock platform (`siyu mock-platform`) over HTTP.

Configure with `--config url=http://127.0.0.1:8900` and optionally `timeout_s=10` and
`remote_account=NAME` (the platform-side name, when it differs from the siyu account name).
Errors never carry the message text or the recipient.
"""

from __future__ import annotations

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
from worker.channels.http import (
    NOT_SENT_ERRORS,
    http_client,
    http_url,
    json_field,
    message_id_of,
)
from worker.errors import UserError
from worker.httpwait import number

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
        base_url = http_url(account, "url", self.config["url"])
        self._client, self._send_timeout_s = http_client(
            self, transport=transport, base_url=base_url
        )
        self.remote_account = _remote_account(account, self.config.get("remote_account"))

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
        message_id = message_id_of(response)
        if message_id is None:
            raise Transient(f"{self._who()}: lookup answered without a message_id")
        return SendResult(message_id)

    def close(self) -> None:
        self._client.close()

    def _send_result(self, response: httpx.Response) -> SendResult:
        if response.status_code == 200:
            message_id = message_id_of(response)
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


def _remote_account(account: str, value: object) -> str:
    if value is None:
        return account
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"account {account!r}: config remote_account must be a non-empty name")
    return value.strip()


def _error_code(response: httpx.Response) -> str | None:
    """The platform's short error code; never the rest of the body, which may echo input."""
    value = json_field(response, "error")
    return value[:80] if isinstance(value, str) else None


def _retry_after_s(response: httpx.Response) -> float:
    """The wait from the body's `retry_after`, else the `Retry-After` header, else 1 s."""
    for value in (json_field(response, "retry_after"), response.headers.get("Retry-After")):
        seconds = number(value)
        if seconds is not None and seconds >= 0:
            return seconds
    return 1.0
