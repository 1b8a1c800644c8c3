"""The small error taxonomy every adapter maps its platform's failures into (DESIGN decision 8).

    ChannelError
    ├── RateLimited(retry_after_s)   the platform said "too fast"; nothing was delivered
    ├── SenderThrottled              the sender is being slowed down; nothing was delivered
    ├── AuthExpired                  credentials must be refreshed (once) before retrying
    ├── RecipientError               permanent for that contact
    │   ├── RecipientUnreachable
    │   └── OptedOut
    ├── SenderError                  pause the account, alert, fail over what can move
    │   ├── SenderAtRisk
    │   └── AccountBanned
    ├── Transient                    known not delivered; retry with backoff (bounded)
    └── DeliveryUnknown              may or may not have been delivered (e.g. read timeout)

Adapters convert library errors at the edge: `raise Transient(...) from exc`.
"""

from __future__ import annotations

from worker.errors import SiyuError


class ChannelError(SiyuError):
    """Root of adapter outcomes other than success."""

    code = "channel_error"


class RateLimited(ChannelError):
    code = "rate_limited"

    def __init__(self, message: str = "rate limited", retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = max(0.0, float(retry_after_s))


class SenderThrottled(ChannelError):
    code = "sender_throttled"


class AuthExpired(ChannelError):
    code = "auth_expired"


class RecipientError(ChannelError):
    code = "recipient_error"


class RecipientUnreachable(RecipientError):
    code = "recipient_unreachable"


class OptedOut(RecipientError):
    """The contact wants no more messages on this channel; `reason` is recorded with the
    suppression (`opted_out`, or the platform's word, e.g. Telegram's `blocked`)."""

    code = "opted_out"

    def __init__(self, message: str = "opted out", reason: str = "opted_out") -> None:
        super().__init__(message)
        self.reason = reason


class SenderError(ChannelError):
    code = "sender_error"


class SenderAtRisk(SenderError):
    code = "sender_at_risk"


class AccountBanned(SenderError):
    code = "account_banned"


class Transient(ChannelError):
    code = "transient"


class DeliveryUnknown(ChannelError):
    """`followed_by`: what the platform answered a later part of a message sent in parts,
    after an earlier part went out. The message is ambiguous (never resent), yet the account
    or the contact still takes that answer's consequence: a cooldown, a pause, an opt-out."""

    code = "delivery_unknown"

    def __init__(
        self, message: str = "delivery unknown", *, followed_by: ChannelError | None = None
    ) -> None:
        super().__init__(message)
        self.followed_by = followed_by
