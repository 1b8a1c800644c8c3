"""Render a campaign before anything is sent: for every member at create, edit and start;
for sample members in `preview`.

The full check renders the template for each member that materialisation would give a
`pending` row (suppressed contacts and contacts no sender can reach are skipped anyway), in
keyset chunks so memory stays flat, with the renderer and length limit of the member's own
channel, exactly as a lane will.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from worker.audience.segments import compile_segment
from worker.campaigns.assignment import Sender, assigned_members
from worker.campaigns.materialise import member_query
from worker.channels.registry import build_channel, channel_class
from worker.dispatch.recipients import load_recipients
from worker.errors import UserError
from worker.render import (
    MessageRenderer,
    ProblemTally,
    RecipientView,
    TemplateProblem,
    check_length,
)
from worker.store import tables
from worker.store.db import tracking_secret
from worker.store.models import Account

SAMPLE = 20
CHUNK = 5000
# A name the template uses at the top level that is not defined: a missing --var, wrong for
# every member alike, so it is the template's one error rather than a member's.
_MISSING_NAME = re.compile(r"^'\w+' is undefined$")
CT = tables.contacts.c


@dataclass(frozen=True)
class Rendered:
    external_id: str
    name: str
    account: str | None
    text: str


@dataclass(frozen=True)
class RenderReport:
    """What rendering for every member found: how many were checked, what failed for whom."""

    template: str  # as messages name it, e.g. templates/course_invite.j2
    checked: int
    problems: list[TemplateProblem]

    @property
    def failed(self) -> int:
        return sum(p.count for p in self.problems)

    def describe(self) -> str:
        """Several lines: the count, then each distinct problem with its first members."""
        lines = [
            f"{self.template} cannot be rendered for {self.failed:,} of {self.checked:,} members:"
        ]
        for p in self.problems:
            who = ", ".join(p.recipients) + (", ..." if p.count > len(p.recipients) else "")
            noun = "member" if p.count == 1 else "members"
            lines.append(f"  {p.error} (external_id {who}; {p.count:,} {noun})")
        return "\n".join(lines)


class Unrenderable(UserError):
    """Some members cannot be rendered and the campaign does not skip them."""

    def __init__(self, report: RenderReport, remedy: str) -> None:
        self.report = report
        super().__init__(f"{report.describe()}\n{remedy}")


def check_senders(accounts: Sequence[Account]) -> None:
    """Each sender's channel configuration is valid (built now, never at the first send)."""
    for account in accounts:
        build_channel(account.channel, account.name, account.config)


def render_members(
    engine: Engine,
    templates_dir: object,
    template: str,
    variables: dict[str, str],
    *,
    campaign: str,
    expression: str,
    accounts: Sequence[Account],
) -> RenderReport:
    """Render for every member that would be sent to; compile errors raise `TemplateError`."""
    renderers: dict[str, MessageRenderer] = {}

    def renderer_for(channel: str) -> MessageRenderer:
        if channel not in renderers:
            renderers[channel] = _renderer(
                engine, templates_dir, template, variables, campaign, channel
            )
        return renderers[channel]

    # A member's limit is its sender's: WeCom customer tasks take longer texts than apps.
    limits = {a.id: _text_limit(a) for a in accounts}
    tightest = _max_len(accounts)[0]
    # Compiled up front, so a template that does not compile fails with no member at all.
    display = renderer_for(accounts[0].channel if accounts else "memory").display_path
    senders = [Sender(a.id, a.channel, True) for a in accounts if a.id is not None]
    members = assigned_members(senders, {}, cancelled=False, closed=False).add_columns(
        CT.external_id, CT.name, CT.tags, CT.attrs, CT.channel
    )
    tally, checked, after = ProblemTally(), 0, 0
    with engine.connect() as conn:
        while True:
            stmt = (
                members.where(compile_segment(expression), CT.id > after)
                .order_by(CT.id)
                .limit(CHUNK)
            )
            rows = conn.execute(stmt).all()
            if not rows:
                break
            after = rows[-1].contact_id
            for row in rows:
                if row.reason is not None:  # skipped at materialisation: never rendered
                    continue
                renderer = renderer_for(row.channel)
                max_len = limits.get(row.account_id, tightest)
                view = RecipientView(
                    row.contact_id,
                    row.external_id,
                    row.name or "",
                    tuple(row.tags or ()),
                    dict(row.attrs or {}),
                )
                checked += 1
                if (error := renderer.error_for(view, max_len)) is not None:
                    if _MISSING_NAME.match(error.detail):  # a --var: the same for everyone
                        raise error
                    tally.add(error, row.external_id)
    return RenderReport(display, checked, tally.problems())


def check_sends(
    engine: Engine,
    templates_dir: object,
    template: str,
    variables: dict[str, str],
    *,
    campaign: str,
    expression: str,
    accounts: Sequence[Account],
    skip_unrenderable: bool,
    remedy: str,
) -> RenderReport:
    """Everything a send will need, checked now: the senders' channels and every member's
    message. Raises `Unrenderable` (ending with `remedy`) unless the campaign skips them."""
    check_senders(accounts)
    report = render_members(
        engine,
        templates_dir,
        template,
        variables,
        campaign=campaign,
        expression=expression,
        accounts=accounts,
    )
    if report.problems and not skip_unrenderable:
        raise Unrenderable(report, remedy)
    return report


def _text_limit(account: Account) -> int:
    return channel_class(account.channel).text_limit(account.config or {})


def _max_len(accounts: Sequence[Account]) -> tuple[int, str]:
    """The tightest message limit among the sender accounts."""
    limits = [(_text_limit(a), a.channel) for a in accounts]
    return min(limits) if limits else (4096, "?")


def render_samples(
    engine: Engine,
    templates_dir: object,
    template: str,
    variables: dict[str, str],
    *,
    campaign: str,
    expression: str,
    accounts: Sequence[Account],
    limit: int = SAMPLE,
) -> list[Rendered]:
    """Render for the first `limit` members; raises `TemplateError` with file and line."""
    channel = accounts[0].channel if accounts else "memory"
    renderer = _renderer(engine, templates_dir, template, variables, campaign, channel)
    max_len, _ = _max_len(accounts)
    with engine.connect() as conn:
        members = conn.execute(member_query(expression, 0, 2**31 - 1, limit)).all()
    views = load_recipients(engine, [m[0] for m in members])
    by_id = {a.id: a.name for a in accounts}
    out = []
    for contact_id, owner_id, _channel in members:
        view = views[contact_id]
        text = renderer.render(view)
        check_length(text, max_len, template=renderer.display_path, recipient=view.external_id)
        account = (
            by_id.get(owner_id)
            if owner_id
            else (accounts[contact_id % len(accounts)].name if accounts else None)
        )
        out.append(Rendered(view.external_id, view.name, account, text))
    return out


def _renderer(
    engine: Engine,
    templates_dir: object,
    template: str,
    variables: dict[str, str],
    campaign: str,
    channel: str,
) -> MessageRenderer:
    """The campaign's template compiled for `channel`; `TemplateError` if it does not compile."""
    from worker.config import get_settings

    return MessageRenderer(
        Path(str(templates_dir)),
        template,
        variables,
        campaign=campaign,
        channel=channel,
        tracking_secret=tracking_secret(engine, get_settings().tracking_secret),
    )
