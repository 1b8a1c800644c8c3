"""The adapter interface every channel implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Union

if TYPE_CHECKING:
    from worker.channels.errors import ChannelError


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One rendered message; `idempotency_key` is stable across every retry of a delivery.

    `campaign` names the campaign it belongs to (None: a reply to a learner). Channels with
    a subject line (e-mail) use `subject`; `unsubscribe_url` is the recipient's one-click
    opt-out link, when the installation serves one.
    """

    to: str
    text: str
    idempotency_key: str
    campaign: str | None = None
    subject: str | None = None
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The platform took the message. `confirmed` False: it holds the message until a person
    confirms it (WeCom customer mass-send); `Channel.confirmations` tells later what became
    of each recipient."""

    message_id: str
    confirmed: bool = True


# What became of one recipient of a held message: delivered (a `SendResult`), refused (the
# `ChannelError` it maps to, usually a `RecipientError`), or None while still waiting.
Confirmation = Union["SendResult", "ChannelError", None]


class Channel(ABC):
    """A sender account on one platform.

    Capabilities are class attributes. The constructor validates the account's config and
    raises `UserError` for bad configuration, so mistakes surface at start-up.
    `send` returns a `SendResult` or raises a `worker.channels.errors.ChannelError`.
    """

    scheme: ClassVar[str]
    max_text_len: ClassVar[int] = 4096
    default_policy: ClassVar[str] = "default"
    supports_idempotency_lookup: ClassVar[bool] = False
    config_keys: ClassVar[frozenset[str]] = frozenset()
    required_config: ClassVar[frozenset[str]] = frozenset()
    # Config values never shown: not in a repr, a log line or an error message.
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    # A subject line (e-mail): compose moves a template's leading `Subject: ...` line into
    # `OutboundMessage.subject`; other channels get their text untouched.
    has_subject: ClassVar[bool] = False
    # Campaign sends carry the recipient's one-click `unsubscribe_url` (when one is served).
    wants_unsubscribe_url: ClassVar[bool] = False

    @classmethod
    def text_limit(cls, config: Mapping[str, Any]) -> int:
        """The most characters one message of an account with `config` may have:
        `max_text_len`, unless the config changes it (a WeCom customer task takes a longer
        text than an application message)."""
        return cls.max_text_len

    @property
    def can_lookup(self) -> bool:
        """Whether this account can ask its platform about a send by key (`lookup`)."""
        return self.supports_idempotency_lookup

    @property
    def preferred_policy(self) -> str | None:
        """The rate-limit policy `accounts add` gives this account when none is named and the
        one named after the channel does not fit its configuration (None: that one)."""
        return None

    @property
    def awaits_confirmation(self) -> bool:
        """Whether sends come back unconfirmed, to be followed up with `confirmations`."""
        return False

    @property
    def send_timeout_s(self) -> float:
        """The longest one `send` can take; a lane's lease must outlast it (DESIGN 13).

        In-process channels answer at once; network channels return their configured timeout.
        """
        return 0.0

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        from worker.errors import UserError

        self.account = account
        self.config = dict(config or {})
        unknown = set(self.config) - self.config_keys
        if unknown:
            known = ", ".join(sorted(self.config_keys)) or "none"
            raise UserError(
                f"account {account!r}: unknown config key(s) {', '.join(sorted(unknown))} "
                f"for channel {self.scheme!r} (known: {known})"
            )
        missing = self.required_config - set(self.config)
        if missing:
            raise UserError(
                f"account {account!r}: channel {self.scheme!r} needs --config "
                + ", ".join(f"{k}=..." for k in sorted(missing))
            )

    def __repr__(self) -> str:
        shown = {k: "***" if k in self.secret_keys else v for k, v in sorted(self.config.items())}
        return f"{type(self).__name__}(account={self.account!r}, config={shown!r})"

    def redact(self, text: str) -> str:
        """`text` with every secret config value of this account replaced by `***`."""
        for key in self.secret_keys:
            value = self.config.get(key)
            if isinstance(value, str) and value:
                text = text.replace(value, "***")
        return text

    @abstractmethod
    def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one message, passing its idempotency key to the platform."""

    def lookup(self, idempotency_key: str) -> SendResult | None:
        """Ask the platform whether a send with this key was accepted (None: it was not)."""
        raise NotImplementedError(f"channel {self.scheme!r} cannot look sends up")

    def confirmations(self, message_id: str) -> dict[str, Confirmation]:
        """For a send that came back unconfirmed: each recipient (`OutboundMessage.to`) of the
        platform's `message_id` with what became of it."""
        raise NotImplementedError(f"channel {self.scheme!r} holds no sends for confirmation")

    def withdraw(self, message_id: str) -> None:
        """Stop a held send (`SendResult.confirmed` False) so the platform never delivers it,
        e.g. when siyu gives up waiting for the confirmation; recipients it already reached
        keep it."""
        raise NotImplementedError(f"channel {self.scheme!r} cannot withdraw a held send")

    def refresh_auth(self) -> None:  # noqa: B027  (a default, not abstract)
        """Renew credentials after `AuthExpired`; the default has nothing to renew."""

    def close(self) -> None:  # noqa: B027  (a default, not abstract)
        """Release connections."""
