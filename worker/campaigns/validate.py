"""Render a campaign for sample members before anything is sent, and for `preview`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from worker.campaigns.materialise import member_query
from worker.channels.registry import channel_class
from worker.dispatch.recipients import load_recipients
from worker.render import MessageRenderer, check_length
from worker.store.models import Account

SAMPLE = 20


@dataclass(frozen=True)
class Rendered:
    external_id: str
    name: str
    account: str | None
    text: str


def _max_len(accounts: Sequence[Account]) -> tuple[int, str]:
    """The tightest message limit among the sender accounts' channels."""
    limits = [(channel_class(a.channel).max_text_len, a.channel) for a in accounts]
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
    renderer = MessageRenderer(
        Path(str(templates_dir)),
        template,
        variables,
        campaign=campaign,
        channel=channel,
        tracking_secret=_secret(),
    )
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


def _secret() -> str:
    from worker.config import get_settings

    return get_settings().tracking_secret
