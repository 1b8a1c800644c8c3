"""The words for the service layer's status codes, in the reader's language.

Codes stay codes in the service layer (and in the CLI's output); a page shows them through
`words(_)`, so that every status a person reads is translated.
"""

from __future__ import annotations

from collections.abc import Callable


def words(_: Callable[[str], str]) -> dict[str, str]:
    """Campaign statuses, delivery states, account states and skip reasons -> words."""
    return {
        "draft": _("draft"),
        "scheduled": _("scheduled"),
        "running": _("running"),
        "paused": _("paused"),
        "completed": _("completed"),
        "cancelled": _("cancelled"),
        "pending": _("pending"),
        "claimed": _("claimed"),
        "sending": _("sending"),
        "sent": _("sent"),
        "failed": _("failed"),
        "skipped": _("skipped"),
        "unknown": _("unknown"),
        "active": _("active"),
        "cooldown": _("cooldown"),
        "banned": _("banned"),
        "marketing": _("marketing"),
        "service": _("service"),
        "no_capacity": _("cannot be sent before the end time"),
        "frequency_cap": _("already at a recipient cap"),
        "owner_not_in_campaign": _("belong to an account that is not a sender"),
        "no_reachable_account": _("are on a channel none of the senders uses"),
        "render_error": _("cannot be rendered"),
        "opted_out": _("opted out"),
        "suppressed": _("suppressed"),
        "reply": _("answered automatically"),
        "handoff": _("handed to a person"),
        "opt_out": _("opted out on request"),
        "learner": _("learner"),
        "assistant": _("assistant"),
        "human": _("operator"),
    }


def word(table: dict[str, str], code: object) -> str:
    """The word for `code`, or the code itself when it has none."""
    text = str(code) if code is not None else ""
    return table.get(text, text)
