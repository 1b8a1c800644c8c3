"""What `campaigns start` tells the operator before it starts: how much will really be sent.

It combines the plan (capacity in the window, members skipped at materialisation, members
at a recipient cap) with the render check of every member. Nothing to send at all is a
refusal unless forced; a part that will not be sent is a warning with its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Reason codes as `campaigns deliveries` shows them, each with what it means for a person.
MEANINGS = {
    "no_capacity": "cannot be sent before the end time",
    "frequency_cap": "already at a recipient cap (per_day / per_week of the policy)",
    "owner_not_in_campaign": "belong to an account that is not a sender of this campaign",
    "no_reachable_account": "are on a channel none of the senders uses",
    "render_error": "cannot be rendered (skipped: the campaign has --skip-unrenderable)",
}


@dataclass(frozen=True)
class Outlook:
    members: int
    will_send: int
    not_sent: dict[str, int]  # reason code -> members
    why: list[str]  # per account, why some cannot be sent before the end

    @classmethod
    def of(cls, plan: dict[str, Any], unrenderable: int = 0) -> Outlook:
        """The plan, less `unrenderable` members: the lanes skip them without a send slot."""
        not_sent = {k: v for k, v in plan["not_sent"].items() if k != "no_capacity"}
        sendable = sum(a["assigned"] - a["capped"] for a in plan["accounts"])
        short = plan["would_not_fit"]
        will_send = max(0, min(sendable - short, sendable - unrenderable))
        if unrenderable:
            not_sent["render_error"] = unrenderable
        if left := sendable - unrenderable - will_send:
            not_sent["no_capacity"] = left
        return cls(plan["members"], will_send, not_sent, list(plan["why"]))

    def reasons(self) -> str:
        """`N reason (meaning); ...` for every reason, then the accounts' explanations."""
        parts = [
            f"{n:,} {code} ({MEANINGS.get(code, 'opted out or suppressed')})"
            for code, n in self.not_sent.items()
        ]
        text = "; ".join(parts)
        if self.why and "no_capacity" in self.not_sent:
            text += " [" + "; ".join(self.why) + "]"
        return text

    def refusal(self, name: str) -> str | None:
        """Why starting would send nothing, with what to do; None when something will go."""
        if self.will_send:
            return None
        if not self.members:
            what = "its segment has no members"
        else:
            what = f"none of its {self.members:,} members can be sent: {self.reasons()}"
        return (
            f"campaign {name!r} would send nothing: {what}. See `siyu campaigns plan {name}`; "
            f"change it with `siyu campaigns edit {name}` (window, accounts), or start it "
            "anyway with --force"
        )

    def warning(self) -> str | None:
        """How many members will not be sent and why; None when all of them will."""
        missing = self.members - self.will_send
        if not self.will_send or missing <= 0:
            return None
        return f"{missing:,} of {self.members:,} members will not be sent: {self.reasons()}"


def verdict(plan: dict[str, Any]) -> str:
    """The plan's verdict in one line, as `campaigns plan` ends with it (and the API gives)."""
    outlook = Outlook.of(plan)
    if plan["fits"] and not outlook.not_sent:
        return f"fits: all {plan['members']:,} members can be sent"
    if plan["fits"]:
        return f"fits; not sent: {outlook.reasons()}"
    missing = outlook.members - outlook.will_send
    return (
        f"does NOT fit: {missing:,} of {outlook.members:,} would not be sent: {outlook.reasons()}"
    )
