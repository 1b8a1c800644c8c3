"""Turn claimed rows into messages: re-check suppression, render, check the length.

One renderer per run is compiled on first use and kept for the lane's slice; a template
that fails (compile or per recipient) fails only the rows it concerns, with file and line:
`failed`, or `skipped` when the campaign was created with --skip-unrenderable.

A reply row carries its text in its outbound message; whether it may reach a suppressed
contact is decided by the last look (`outbox.mark_sending`), not here.

On a channel with subjects (e-mail, `Channel.has_subject`) a campaign message's subject is the
rendered text's first line when it reads `Subject: ...` (that line and the blank lines after
it leave the body), else the campaign's `--var subject`, else the campaign's name; the length
limit applies to the body. A reply has no subject (the channel picks one). Campaign sends on
channels that want one (`Channel.wants_unsubscribe_url`) carry the recipient's unsubscribe
link when the installation serves them (`worker.unsubscribe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from worker.channels.base import Channel, OutboundMessage
from worker.config import Settings
from worker.dispatch import runs
from worker.dispatch.outbox import Claimed, Outcome
from worker.dispatch.recipients import load_batch
from worker.render import MessageRenderer, RecipientView, TemplateError, check_length
from worker.store import tables
from worker.store.models import DeliveryState
from worker.unsubscribe import link_for

M = tables.messages.c
SUBJECT_PREFIX = "subject:"


def idempotency_key(
    installation: str, run_id: int | None, contact_id: int, message_id: int | None = None
) -> str:
    """Stable across every retry and every worker: the platform dedupes on it.

    A campaign send is keyed by run and contact, a reply by its outbound message (one per
    inbound message's decision, or per `siyu reply`). The installation id keeps two
    databases that share a platform account apart (DESIGN 16).
    """
    if message_id is not None:
        return f"siyu-{installation}-m{message_id}"
    return f"siyu-{installation}-{run_id}-{contact_id}"


@dataclass
class Prepared:
    todo: list[tuple[Claimed, OutboundMessage]] = field(default_factory=list)
    done: list[Outcome] = field(default_factory=list)


class Composer:
    """Builds the outbound messages of one account lane."""

    def __init__(
        self,
        settings: Settings,
        channel: str,
        adapter: Channel,
        installation: str,
        tracking_secret: str,
    ) -> None:
        self.settings = settings
        self.installation = installation
        self.tracking_secret = tracking_secret
        self.channel = channel
        self.max_text_len = adapter.text_limit(adapter.config)
        self.has_subject = adapter.has_subject
        self.wants_unsubscribe_url = adapter.wants_unsubscribe_url
        self.renderers: dict[int, MessageRenderer | TemplateError] = {}

    def prepare(
        self, engine: Engine, batch: list[Claimed], live: dict[int, runs.RunInfo]
    ) -> Prepared:
        contact_ids = [c.contact_id for c in batch]
        views, suppressed = load_batch(engine, contact_ids)
        replies = reply_texts(engine, [c.message_id for c in batch if c.message_id is not None])
        out = Prepared()
        for claimed in batch:
            reason = suppressed.get(claimed.contact_id)
            view = views.get(claimed.contact_id)
            if view is None or (reason is not None and claimed.message_id is None):
                out.done.append(
                    Outcome(claimed.id, DeliveryState.SKIPPED, reason=reason or "contact_deleted")
                )
                continue
            if claimed.message_id is not None:
                made = self._reply(claimed, view, replies[claimed.message_id])
            else:
                assert claimed.run_id is not None  # a row carries a message or belongs to a run
                made = self._campaign_message(claimed, claimed.run_id, view, live)
            if isinstance(made, Outcome):
                out.done.append(made)
            else:
                out.todo.append((claimed, made))
        return out

    def _campaign_message(
        self, claimed: Claimed, run_id: int, view: RecipientView, live: dict[int, runs.RunInfo]
    ) -> OutboundMessage | Outcome:
        info = live[run_id]
        rendered = self._render(claimed, run_id, view, live)
        if isinstance(rendered, Outcome):
            return rendered
        subject, body = rendered
        if self.has_subject:
            subject = subject or one_line(info.variables.get("subject", "")) or info.campaign
        link = link_for(self.settings, claimed.contact_id) if self.wants_unsubscribe_url else None
        key = idempotency_key(self.installation, run_id, claimed.contact_id)
        return OutboundMessage(view.external_id, body, key, info.campaign, subject, link)

    def _reply(self, claimed: Claimed, view: RecipientView, text: str) -> OutboundMessage | Outcome:
        try:
            check_length(text, self.max_text_len, template="reply", recipient=view.external_id)
        except TemplateError as exc:
            return Outcome(claimed.id, DeliveryState.FAILED, reason="too_long", error=str(exc))
        key = idempotency_key(self.installation, None, claimed.contact_id, claimed.message_id)
        return OutboundMessage(view.external_id, text, key)

    def _render(
        self, claimed: Claimed, run_id: int, view: RecipientView, live: dict[int, runs.RunInfo]
    ) -> tuple[str | None, str] | Outcome:
        """(the subject line's subject, the body) or the row's outcome when rendering fails."""
        renderer = self._renderer(run_id, live)
        try:
            if isinstance(renderer, TemplateError):
                raise renderer
            text = renderer.render(view)
            subject, text = split_subject(text) if self.has_subject else (None, text)
            check_length(
                text,
                self.max_text_len,
                template=renderer.display_path,
                recipient=view.external_id,
            )
        except TemplateError as exc:
            skip = live[run_id].skip_unrenderable
            state = DeliveryState.SKIPPED if skip else DeliveryState.FAILED
            return Outcome(claimed.id, state, reason="render_error", error=str(exc))
        return subject, text

    def _renderer(
        self, run_id: int, live: dict[int, runs.RunInfo]
    ) -> MessageRenderer | TemplateError:
        cached = self.renderers.get(run_id)
        if cached is None:
            info = live[run_id]
            try:
                cached = MessageRenderer(
                    self.settings.templates_dir,
                    info.template,
                    info.variables,
                    campaign=info.campaign,
                    channel=self.channel,
                    tracking_secret=self.tracking_secret,
                )
            except TemplateError as exc:
                cached = exc
            self.renderers[run_id] = cached
        return cached


def split_subject(text: str) -> tuple[str | None, str]:
    """A first line `Subject: ...` (any case) as (its subject, None when empty; the rest
    without its leading blank lines); (None, text) when the first line is no such line."""
    first, _, rest = text.partition("\n")
    if not first.lower().startswith(SUBJECT_PREFIX):
        return None, text
    return one_line(first[len(SUBJECT_PREFIX) :]) or None, rest.lstrip("\r\n")


def one_line(text: str) -> str:
    """`text` with its runs of whitespace, line breaks included, as single spaces."""
    return " ".join(text.split())


def reply_texts(engine: Engine, message_ids: Sequence[int]) -> dict[int, str]:
    """The text of each outbound message a reply row carries."""
    if not message_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(M.id, M.text).where(M.id.in_(message_ids))).all()
    return {row[0]: row[1] for row in rows}
