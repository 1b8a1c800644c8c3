"""What the HTTP adapters share: their config checks, timeouts and response fields.

An error or message from here never carries a message's text, its recipient or a secret.
"""

from __future__ import annotations

import logging
import re

import httpx

from worker.channels.base import Channel
from worker.errors import UserError
from worker.httpwait import number

CONNECT_TIMEOUT_S = 3.0
DEFAULT_TIMEOUT_S = 10.0

# Failures before the request could reach the platform: nothing was sent.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The password of a URL's `user:password@` (a gateway behind basic auth), which httpx would
# log with the request line.
URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)")


def http_url(account: str, key: str, value: object) -> str:
    """`value` as an http(s) URL with a host (no trailing `/`); else a `UserError` naming the
    account and the config key."""
    try:
        url = httpx.URL(value) if isinstance(value, str) else None
    except httpx.InvalidURL:
        url = None
    bad_port = url is not None and url.port is not None and not 0 < url.port < 65536
    if url is None or url.scheme not in ("http", "https") or not url.host or bad_port:
        raise UserError(
            f"account {account!r}: config {key} must be an http(s) URL with a host, got {value!r}"
        )
    return str(value).rstrip("/")


def timeout_seconds(account: str, value: object) -> float:
    """The `timeout_s` config value, a positive number of seconds."""
    timeout_s = number(value)
    if timeout_s is None or timeout_s <= 0:
        raise UserError(
            f"account {account!r}: config timeout_s must be a positive number, got {value!r}"
        )
    return timeout_s


def timeouts(timeout_s: float) -> tuple[httpx.Timeout, float]:
    """The client's timeouts for `timeout_s`, and the longest one request can take."""
    connect_s = min(CONNECT_TIMEOUT_S, timeout_s)
    return httpx.Timeout(timeout_s, connect=connect_s), connect_s + timeout_s


def http_client(
    channel: Channel, *, transport: httpx.BaseTransport | None = None, base_url: str = ""
) -> tuple[httpx.Client, float]:
    """The account's client, with the timeouts of its `timeout_s` config (default
    `DEFAULT_TIMEOUT_S`), and the longest one request can take."""
    timeout_s = timeout_seconds(channel.account, channel.config.get("timeout_s", DEFAULT_TIMEOUT_S))
    hide_in_http_logs(URL_PASSWORD)
    timeout, request_s = timeouts(timeout_s)
    client = httpx.Client(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        headers={"User-Agent": f"siyu-{channel.scheme}-channel"},
    )
    return client, request_s


def json_field(response: httpx.Response, name: str) -> object:
    """A top-level field of a JSON object body; None when absent or not JSON."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def message_id_of(response: httpx.Response) -> str | None:
    """The platform's `message_id`, when the body has a non-empty string one."""
    value = json_field(response, "message_id")
    return value if isinstance(value, str) and value else None


class HideInUrls(logging.Filter):
    """httpx logs every request's URL at INFO. Where a platform puts a credential in the URL
    (Telegram's bot token, WeCom's access token), the pattern's first group is kept and the
    rest of each match becomes `***` before any handler sees the record."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = self.pattern.sub(r"\1***", message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def hide_in_http_logs(pattern: re.Pattern[str]) -> None:
    """Put a `HideInUrls(pattern)` on httpx's logger, once per pattern."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, HideInUrls) and f.pattern == pattern for f in logger.filters):
        logger.addFilter(HideInUrls(pattern))
