"""The `telegram` channel: a bot sends each message with the Bot API's `sendMessage`.

Configure with `--config token=123456789:AA...` (the token @BotFather gives) and optionally
`api_base=https://api.telegram.org` (a self-hosted Bot API server or a relay) and
`timeout_s=10`. The contact's `external_id` is the chat id.

The wire format (core.telegram.org/bots/api#making-requests, #sendmessage): one
`POST {api_base}/bot{token}/sendMessage` with JSON `{"chat_id", "text"}` per part, and no
`parse_mode`, so the text is plain and nothing in a learner's name is read as markup. Telegram
answers `{"ok": true, "result": {"message_id": N, ...}}`, or `{"ok": false, "error_code": N,
"description": "...", "parameters": {"retry_after": S}}` (#responseparameters):

    200 {"ok": true}                    sent (a split text: the parts' ids joined by ",")
    429 (parameters.retry_after)        rate limited: nothing was sent, the bot cools down
    403 "Forbidden: bot was blocked by the user"
                                        opted out (reason `blocked`): suppressed for good
    other 403 (user deactivated, kicked from the group, not a member of the channel)
                                        that recipient is unreachable
    400 "Bad Request: chat not found"   that recipient is unreachable
    other 4xx                           permanent for that message: failed
    401, 404 (a revoked or mistyped token)
                                        the account's credentials: the account is paused
    3xx (api_base redirects)            nothing sent (not followed): the account is paused
    connection refused, connect timeout nothing was sent: retried with backoff
    5xx, a timeout after the request was written, a dropped connection
                                        ambiguous: `unknown`, never resent (Telegram has no
                                        idempotency key and nothing to look a send up with)

A text over 4096 characters goes as several messages, in order, to the same chat, one second
apart (core.telegram.org/bots/faq: about one message per second to a chat, 20 a minute to a
group, 30 a second per bot). If a later part fails, the learner already has the first: the
message is `unknown`, never resent, while the failure still takes effect (a 429 cools the bot
down, a block suppresses the learner, a refused token pauses the account).

The token never appears in a repr, a log line (httpx logs every URL, so its records pass
`hide_in_http_logs`) or an error message, nor does the text or chat.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    OptedOut,
    RateLimited,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.http import (
    NOT_SENT_ERRORS,
    hide_in_http_logs,
    http_client,
    http_url,
    json_field,
)
from worker.errors import UserError
from worker.httpwait import number, retry_after_s

DEFAULT_API_BASE = "https://api.telegram.org"
PART_LEN = 4096  # sendMessage's limit on one text, in characters
PART_GAP_S = 1.0  # between the parts of one message: Telegram's pace for one chat
# `<bot id>:<secret>`; the id is the bot's public user id, the secret about 35 characters.
TOKEN_SHAPE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{30,64}")
TOKEN_IN_URL = re.compile(r"(/bot\d+:)[A-Za-z0-9_-]+")
BLOCKED = "bot was blocked by the user"
CHAT_NOT_FOUND = "chat not found"


class TelegramChannel(Channel):
    """Sends as one Telegram bot (module docstring)."""

    scheme: ClassVar[str] = "telegram"
    # Two full parts' worth. A campaign message longer than two screens is most likely a
    # template mistake, and each part adds a request and a pause to the longest `send`, which
    # the lane's lease must outlast; texts this long split into at most MAX_PARTS parts.
    max_text_len: ClassVar[int] = 2 * PART_LEN
    default_policy: ClassVar[str] = "telegram"
    config_keys: ClassVar[frozenset[str]] = frozenset({"token", "api_base", "timeout_s"})
    required_config: ClassVar[frozenset[str]] = frozenset({"token"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"token"})

    def __init__(
        self,
        account: str,
        config: Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(account, config)
        token = self.config["token"]
        if not isinstance(token, str) or TOKEN_SHAPE.fullmatch(token) is None:
            raise UserError(
                f"account {account!r}: config token is not a bot token as @BotFather gives it "
                "(<bot id digits>:<about 35 letters, digits, '_' or '-'>); value not shown"
            )
        api_base = http_url(account, "api_base", self.config.get("api_base", DEFAULT_API_BASE))
        self._url = f"{api_base}/bot{token}/sendMessage"
        self._client, self._request_s = http_client(self)
        self._sleep = sleep
        hide_in_http_logs(TOKEN_IN_URL)

    @property
    def send_timeout_s(self) -> float:
        """The longest message: every part's request and the pauses between them."""
        return MAX_PARTS * self._request_s + (MAX_PARTS - 1) * PART_GAP_S

    def send(self, message: OutboundMessage) -> SendResult:
        parts = split_text(message.text)
        if not parts:
            raise ChannelError(f"{self._who()}: the message is empty")
        ids: list[str] = []
        for index, part in enumerate(parts):
            if index:
                self._sleep(PART_GAP_S)
            try:
                ids.append(self._send_part(message.to, part))
            except ChannelError as exc:
                if not ids:
                    raise
                raise DeliveryUnknown(
                    f"{self._who()}: part {index + 1} of {len(parts)} failed ({exc.code}) "
                    f"after {index} delivered; not resent",
                    followed_by=exc,  # a 429 still cools the bot down, a block still suppresses
                ) from exc
        return SendResult(",".join(ids))

    def close(self) -> None:
        self._client.close()

    def _send_part(self, chat_id: str, text: str) -> str:
        """One `sendMessage`; the new message's id, or the `ChannelError` it maps to."""
        try:
            response = self._client.post(self._url, json={"chat_id": chat_id, "text": text})
        except NOT_SENT_ERRORS as exc:
            raise Transient(f"{self._who()}: Bot API unreachable ({type(exc).__name__})") from exc
        except httpx.RequestError as exc:
            raise DeliveryUnknown(
                f"{self._who()}: no answer after sending ({type(exc).__name__})"
            ) from exc
        if not response.is_success:
            raise self._error_for(response)
        result = json_field(response, "result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if json_field(response, "ok") is not True or not isinstance(message_id, int):
            raise DeliveryUnknown(f"{self._who()}: HTTP {response.status_code} without a message")
        return str(message_id)

    def _error_for(self, response: httpx.Response) -> ChannelError:
        status = response.status_code
        described = json_field(response, "description")
        said = self.redact(described)[:200] if isinstance(described, str) else ""
        what = f"{self._who()}: HTTP {status}" + (f" {said!r}" if said else "")
        if status == 429:
            return RateLimited(what, retry_after_s=_retry_after_s(response))
        if status == 403 and BLOCKED in said.lower():
            return OptedOut(what, reason="blocked")
        if status == 403 or (status == 400 and CHAT_NOT_FOUND in said.lower()):
            return RecipientUnreachable(what)
        if status in (401, 404):
            return SenderAtRisk(f"{what}: Telegram refused this bot's token")
        if 300 <= status < 400:  # not followed: a redirect sent nothing
            return SenderAtRisk(f"{what}: api_base redirects; set it to where it points")
        if 400 <= status < 500:
            return ChannelError(what)
        return DeliveryUnknown(what)

    def _who(self) -> str:
        return f"telegram account {self.account!r}"


def _retry_after_s(response: httpx.Response) -> float:
    """`parameters.retry_after` (what the Bot API sends), else a `Retry-After` header, else 1."""
    parameters = json_field(response, "parameters")
    asked = number(parameters.get("retry_after")) if isinstance(parameters, dict) else None
    if asked is None:
        asked = retry_after_s(response.headers, datetime.now(UTC))
    return 1.0 if asked is None else asked


def split_text(text: str, limit: int = PART_LEN) -> list[str]:
    """`text` as parts of at most `limit` characters, in order: whole lines packed greedily
    (joined by their line breaks); a longer line is cut by `_cut`. Parts of only whitespace
    are left out (Telegram refuses an empty text).

    A part ends only where the next piece would not fit, so any two neighbouring parts span
    more than `limit` characters of `text`: n characters make at most
    2 * (n // (limit + 1)) + 1 parts (`MAX_PARTS`)."""
    parts: list[str] = []
    current: str | None = None
    for piece in _pieces(text, limit):
        if current is not None and len(current) + 1 + len(piece) <= limit:
            current = f"{current}\n{piece}"
            continue
        if current is not None:
            parts.append(current)
        current = piece
    if current is not None:
        parts.append(current)
    return [part for part in parts if part.strip()]


def _pieces(text: str, limit: int) -> Iterator[str]:
    """Each line of `text`; a line longer than `limit` in pieces cut by `_cut`."""
    for whole in text.split("\n"):
        line = whole
        while len(line) > limit:
            end, resume = _cut(line, limit)
            yield line[:end]
            line = line[resume:]
        yield line


def _cut(line: str, limit: int) -> tuple[int, int]:
    """Where the first piece of a too long `line` ends and the next begins: at its last
    whitespace in the second half of the first `limit + 1` characters (dropped there), else
    hard at `limit`. A piece cut off is over half a part, so two pieces of one line never fit
    in one part together (they would be joined by a line break)."""
    for at in range(limit, limit // 2, -1):
        if line[at].isspace():
            return at, at + 1
    return limit, limit


MAX_PARTS = 2 * (TelegramChannel.max_text_len // (PART_LEN + 1)) + 1  # `split_text`: 3
