"""The `webhook` channel: one signed HTTP `POST` per message to the operator's own gateway.

The usual bridge to an in-house WeCom, RPA or SMS gateway. Configure with
`--config url=https://gw.example.com/send --config secret=whsec_...` and optionally
`lookup_url=https://gw.example.com/sent/{key}` and `timeout_s=10`.

The wire format (`../shared/CONTRACT.md`, "Channels"): a JSON body
`{"idempotency_key", "account", "to", "text", "campaign"}` signed by the Standard Webhooks
scheme with `webhook-id` = the idempotency key (the gateway verifies it with the official
`standardwebhooks` library of its language and treats a repeated id as a repeat), plus an
`Idempotency-Key` header with the same value. What the gateway answers:

    2xx {"message_id"}      sent (no message_id: sent, known by its idempotency key)
    429 (+ Retry-After)     rate limited: nothing was sent, the account cools down
    503                     not processed: retried with backoff; with a Retry-After, the
                            account cools down that long first, as for a 429
    401, 403                the account's credentials: the account is paused
    3xx                     a redirect (not followed; nothing was processed): the account
                            is paused until `url` names where it points
    other 4xx               permanent for that message: failed
    other 5xx, a timeout after the request was written, a dropped connection
                            ambiguous: settled by `GET lookup_url` (200 {"message_id"} sent,
                            404 not sent) when configured, else `unknown` (never resent)

A lookup is signed too (an empty body, `webhook-id` = the key), so the gateway can tell it
comes from siyu. The secret never appears in a repr, a log line or an error message, and
neither do the message's text or recipient.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

import httpx

from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RateLimited,
    SenderAtRisk,
    Transient,
)
from worker.channels.http import (
    NOT_SENT_ERRORS,
    http_client,
    http_url,
    message_id_of,
)
from worker.errors import UserError
from worker.httpwait import retry_after_s
from worker.webhooks import check_secret

KEY_PLACEHOLDER = "{key}"


class WebhookChannel(Channel):
    """Sends through the operator's gateway (module docstring)."""

    scheme: ClassVar[str] = "webhook"
    max_text_len: ClassVar[int] = 4096
    default_policy: ClassVar[str] = "webhook"
    supports_idempotency_lookup: ClassVar[bool] = True  # when lookup_url is set: `can_lookup`
    config_keys: ClassVar[frozenset[str]] = frozenset({"url", "secret", "lookup_url", "timeout_s"})
    required_config: ClassVar[frozenset[str]] = frozenset({"url", "secret"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"secret"})

    def __init__(
        self,
        account: str,
        config: Mapping[str, Any] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(account, config)
        self.url = http_url(account, "url", self.config["url"])
        secret = self.config["secret"]
        try:
            self._signer = check_secret(secret if isinstance(secret, str) else "", "secret")
        except ValueError as exc:
            raise UserError(f"account {account!r}: config {exc}") from None
        self.lookup_url = _lookup_url(account, self.config.get("lookup_url"))
        self._client, self._send_timeout_s = http_client(self, transport=transport)

    @property
    def send_timeout_s(self) -> float:
        return self._send_timeout_s

    @property
    def can_lookup(self) -> bool:
        return self.lookup_url is not None

    def send(self, message: OutboundMessage) -> SendResult:
        key = message.idempotency_key
        body = json.dumps(
            {"idempotency_key": key, "account": self.account, "to": message.to,
             "text": message.text, "campaign": message.campaign},
            ensure_ascii=False,
        ).encode()  # fmt: skip
        try:
            response = self._client.post(self.url, content=body, headers=self._headers(key, body))
        except NOT_SENT_ERRORS as exc:
            raise Transient(f"{self._who()}: gateway unreachable ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise DeliveryUnknown(
                f"{self._who()}: no answer after sending ({type(exc).__name__})"
            ) from exc
        if response.is_success:
            return SendResult(message_id_of(response) or key)
        self._raise_for(response)

    def lookup(self, idempotency_key: str) -> SendResult | None:
        if self.lookup_url is None:
            return super().lookup(idempotency_key)
        url = self.lookup_url.replace(KEY_PLACEHOLDER, quote(idempotency_key, safe=""))
        try:
            response = self._client.get(url, headers=self._headers(idempotency_key, b""))
        except httpx.TransportError as exc:
            raise Transient(f"{self._who()}: lookup failed ({type(exc).__name__})") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise Transient(f"{self._who()}: lookup answered HTTP {response.status_code}")
        return SendResult(message_id_of(response) or idempotency_key)

    def close(self) -> None:
        self._client.close()

    def _headers(self, key: str, body: bytes) -> dict[str, str]:
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "idempotency-key": key,
            "webhook-id": key,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(key, now, body),
        }

    def _raise_for(self, response: httpx.Response) -> NoReturn:
        status = response.status_code
        what = f"{self._who()}: HTTP {status}"
        waited = retry_after_s(response.headers, datetime.now(UTC))
        if status == 429:
            raise RateLimited(what, retry_after_s=1.0 if waited is None else waited)
        if status == 503:  # overloaded; with a Retry-After, it says for how long
            raise Transient(what) if waited is None else RateLimited(what, retry_after_s=waited)
        if status in (401, 403):
            raise SenderAtRisk(f"{what}: the gateway refused this account's credentials")
        if 300 <= status < 400:  # not followed: a redirect processed nothing
            raise SenderAtRisk(f"{what}: the gateway redirects; set url to where it points")
        if 400 <= status < 500:
            raise ChannelError(what)
        raise DeliveryUnknown(what)

    def _who(self) -> str:
        return f"webhook account {self.account!r}"


def _lookup_url(account: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or KEY_PLACEHOLDER not in value:
        raise UserError(
            f"account {account!r}: config lookup_url must contain {KEY_PLACEHOLDER} "
            f"where the idempotency key goes, got {value!r}"
        )
    http_url(account, "lookup_url", value.replace(KEY_PLACEHOLDER, "k"))
    return value
