"""Channel names -> adapter classes: built-ins plus the `siyu.channels` entry-point group."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from worker.channels.base import Channel
from worker.errors import UserError

BUILTIN_CHANNELS: dict[str, str] = {
    "memory": "worker.channels.memory:MemoryChannel",
    "mock": "worker.channels.mock:MockChannel",
    "smtp": "worker.channels.smtp:SmtpChannel",
    "telegram": "worker.channels.telegram:TelegramChannel",
    "webhook": "worker.channels.webhook:WebhookChannel",
    "wecom": "worker.channels.wecom:WecomChannel",
}

ENTRY_POINT_GROUP = "siyu.channels"


def known_channels() -> dict[str, str]:
    """Every channel name with the `module:Class` that implements it."""
    found = dict(BUILTIN_CHANNELS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def channel_class(name: str) -> type[Channel]:
    """The adapter class for `name`; an unknown name fails with the list of known ones."""
    known = known_channels()
    target = known.get(name)
    if target is None:
        raise UserError(f"unknown channel {name!r}; known channels: {', '.join(sorted(known))}")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        # A plugin package removed or broken since its entry point was read.
        raise UserError(
            f"channel {name!r} ({target}) cannot be loaded here ({type(exc).__name__}: {exc}); "
            "install its package on this machine"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        raise UserError(f"channel {name!r} ({target}) is not a worker.channels.base.Channel")
    return cls


def build_channel(name: str, account: str, config: Mapping[str, Any] | None = None) -> Channel:
    """Instantiate (and so validate) the adapter for one account."""
    return channel_class(name)(account, config or {})
