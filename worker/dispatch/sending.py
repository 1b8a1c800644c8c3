"""One send through a channel, turned into an outbox outcome (DESIGN decision 8).

Retries cover only what is known not to have been delivered (`Transient`), with tenacity's
exponential backoff and jitter, bounded. An ambiguous failure is looked up by idempotency key
where the channel can; otherwise the row becomes `unknown` and is never resent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.channels.errors import (
    AccountBanned,
    AuthExpired,
    ChannelError,
    DeliveryUnknown,
    OptedOut,
    RateLimited,
    RecipientError,
    SenderError,
    SenderThrottled,
    Transient,
)
from worker.dispatch.outbox import Outcome
from worker.store.models import AccountState, DeliveryState, utcnow

log = logging.getLogger(__name__)

AWAITING = "awaiting_confirmation"  # a sent row whose platform holds it for confirmation

TRANSIENT_TRIES = 3
# Before each retry: take a limiter slot, wait for it and check the fence; False: don't retry.
BeforeRetry = Callable[[], bool]


class NoRetrySlot(Exception):
    """A retry found no slot (or lost the fence): the row waits, nothing more is sent."""


@dataclass(frozen=True, slots=True)
class Stop:
    """The account must stop sending: why, its next state, and for how long."""

    reason: str
    account_state: str
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SendReport:
    outcome: Outcome | None  # None: leave the row `sending` for the reconciler
    stop: Stop | None = None
    opted_out: str | None = None  # the suppression's reason when the contact opted out


def _guarded(
    channel: Channel, before_retry: BeforeRetry
) -> Callable[[OutboundMessage], SendResult]:
    """`channel.send` preceded by `before_retry`: every retry goes out at a reserved time."""

    def send(message: OutboundMessage) -> SendResult:
        if not before_retry():
            raise NoRetrySlot()
        return channel.send(message)

    return send


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception_type(Transient),
        stop=stop_after_attempt(TRANSIENT_TRIES - 1),
        wait=wait_random_exponential(multiplier=0.2, max=5),
        reraise=True,
    )


def _send_once_then_retry(
    channel: Channel, message: OutboundMessage, before_retry: BeforeRetry, *, first: bool
) -> SendResult:
    """The first try is a plain call; tenacity only steps in after a `Transient` error."""
    try:
        return channel.send(message) if first else _guarded(channel, before_retry)(message)
    except Transient:
        return _retrying()(_guarded(channel, before_retry), message)


def _send_with_retries(
    channel: Channel, message: OutboundMessage, before_retry: BeforeRetry
) -> SendResult:
    try:
        return _send_once_then_retry(channel, message, before_retry, first=True)
    except AuthExpired:
        channel.refresh_auth()  # once; a second AuthExpired propagates
        return _send_once_then_retry(channel, message, before_retry, first=False)


def send_one(
    channel: Channel,
    delivery_id: int,
    attempts: int,
    message: OutboundMessage,
    max_attempts: int,
    before_retry: BeforeRetry = lambda: True,
) -> SendReport:
    """Send and classify; never raises for channel outcomes."""
    try:
        result = _send_with_retries(channel, message, before_retry)
    except NoRetrySlot:
        return SendReport(retry_later(delivery_id, attempts, max_attempts, "retry not sent"))
    except (RateLimited, SenderThrottled, SenderError, AuthExpired) as exc:
        # The sender's problem, not the recipient's: the row waits, the account stops.
        return SendReport(
            Outcome(delivery_id, DeliveryState.PENDING, error=exc.code),
            _account_stop(channel, exc),
        )
    except OptedOut as exc:
        return SendReport(
            Outcome(delivery_id, DeliveryState.SKIPPED, reason=exc.reason), opted_out=exc.reason
        )
    except RecipientError as exc:
        return SendReport(
            Outcome(delivery_id, DeliveryState.FAILED, reason=exc.code, error=str(exc))
        )
    except Transient as exc:
        return SendReport(retry_later(delivery_id, attempts, max_attempts, str(exc)))
    # An adapter's unexpected error may come after the message left: it is ambiguous.
    except (DeliveryUnknown, Exception) as exc:  # noqa: BLE001
        if isinstance(exc, ChannelError) and not isinstance(exc, DeliveryUnknown):
            return SendReport(
                Outcome(delivery_id, DeliveryState.FAILED, reason=exc.code, error=str(exc))
            )
        outcome = _settle_ambiguous(channel, delivery_id, attempts, message, exc, max_attempts)
        later = exc.followed_by if isinstance(exc, DeliveryUnknown) else None
        return SendReport(
            outcome,
            _account_stop(channel, later) if later is not None else None,
            opted_out=later.reason if isinstance(later, OptedOut) else None,
        )
    # A send the platform holds for a person's confirmation is followed up by the tick.
    reason = None if result.confirmed else AWAITING
    return SendReport(
        Outcome(delivery_id, DeliveryState.SENT, reason=reason, message_id=result.message_id)
    )


def _account_stop(channel: Channel, exc: ChannelError) -> Stop | None:
    """How the account stops after `exc` (None: it goes on)."""
    if isinstance(exc, RateLimited):
        return Stop("rate_limited", AccountState.COOLDOWN, exc.retry_after_s)
    if isinstance(exc, SenderThrottled):
        return Stop("throttled", AccountState.COOLDOWN, 30.0)
    if isinstance(exc, SenderError | AuthExpired):
        log.warning("account %s stops: %s", channel.account, exc.code)
        state = AccountState.BANNED if isinstance(exc, AccountBanned) else AccountState.PAUSED
        return Stop(exc.code, state)
    return None


def retry_later(delivery_id: int, attempts: int, max_attempts: int, error: str) -> Outcome:
    """Known not delivered: back to `pending` with exponential backoff, or `failed` at the limit."""
    if attempts >= max_attempts:
        return Outcome(delivery_id, DeliveryState.FAILED, reason="retries_exhausted", error=error)
    backoff_s = min(300.0, 5.0 * 2 ** max(0, attempts - 1))
    retry_at = utcnow() + timedelta(seconds=backoff_s)
    return Outcome(delivery_id, DeliveryState.PENDING, error=error, retry_at=retry_at)


def _settle_ambiguous(
    channel: Channel,
    delivery_id: int,
    attempts: int,
    message: OutboundMessage,
    exc: BaseException,
    max_attempts: int,
) -> Outcome | None:
    """Ask the platform; without a lookup the row is `unknown`, never resent."""
    error = f"{type(exc).__name__}: {exc}"[:300]
    if not channel.can_lookup:
        return Outcome(delivery_id, DeliveryState.UNKNOWN, reason="ambiguous_send", error=error)
    try:
        found = channel.lookup(message.idempotency_key)
    except ChannelError:
        return None  # still `sending`: the reconciler asks again once our lease is gone
    if found is not None:
        return Outcome(delivery_id, DeliveryState.SENT, message_id=found.message_id)
    return retry_later(delivery_id, attempts, max_attempts, error)
