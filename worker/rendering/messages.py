"""Campaign messages: a template compiled once, rendered per recipient, checked up front."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.rendering.errors import TemplateError, display_path
from worker.rendering.sandbox import TEMPLATE_SUFFIX, load, render, templates_root
from worker.rendering.tracking import Tracker

RESERVED_NAMES = frozenset({"contact", "track"})


@dataclass(frozen=True, slots=True)
class RecipientView:
    """One recipient as the dispatch engine hands it to the renderer."""

    contact_id: int
    external_id: str
    name: str
    tags: tuple[str, ...] = ()
    attrs: Mapping[str, str] = field(default_factory=dict)


class ContactView:
    """What a template sees as `contact`: the recipient without its internal id."""

    __slots__ = ("attrs", "external_id", "name", "tags")

    def __init__(self, recipient: RecipientView) -> None:
        self.name = recipient.name
        self.external_id = recipient.external_id
        self.tags = recipient.tags
        self.attrs = recipient.attrs


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One distinct problem found by a test render, with the first recipients it hit."""

    error: TemplateError
    recipient: str | None  # external_id; None when the template does not compile
    count: int  # how many of the checked recipients hit it
    recipients: tuple[str, ...] = ()  # the first few it hit (external ids), in order

    def __str__(self) -> str:
        return str(self.error)


class ProblemTally:
    """Test-render results gathered into distinct problems, each with its first recipients."""

    EXAMPLES = 5

    def __init__(self) -> None:
        self._first: dict[tuple[object, ...], TemplateError] = {}
        self._who: dict[tuple[object, ...], list[str]] = {}
        self._counts: dict[tuple[object, ...], int] = {}
        self.failed = 0

    def add(self, error: TemplateError, recipient: str) -> None:
        key = _problem_key(error)
        self._first.setdefault(key, error)
        who = self._who.setdefault(key, [])
        if len(who) < self.EXAMPLES:
            who.append(recipient)
        self._counts[key] = self._counts.get(key, 0) + 1
        self.failed += 1

    def problems(self) -> list[TemplateProblem]:
        return [
            TemplateProblem(error, self._who[key][0], self._counts[key], tuple(self._who[key]))
            for key, error in self._first.items()
        ]


def check_length(
    text: str, max_len: int, *, template: str, recipient: str, channel: str | None = None
) -> None:
    """Raise `TemplateError` when `text` has more than `max_len` characters (not bytes)."""
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if len(text) <= max_len:
        return
    limit = f"channel {channel!r} allows {max_len:,}" if channel else f"the limit is {max_len:,}"
    detail = f"the message for {recipient!r} is {len(text):,} characters; {limit}"
    raise TemplateError(detail, kind="length", path=template)


class MessageRenderer:
    """One campaign's template, compiled once and rendered per recipient.

    `display_path` (e.g. `templates/course_invite.j2`) is what messages call the template.
    """

    def __init__(
        self,
        templates_dir: Path,
        template_name: str,
        variables: Mapping[str, str],
        *,
        campaign: str,
        channel: str,
        tracking_secret: str,
    ) -> None:
        self._tracker = Tracker(secret=tracking_secret, campaign=campaign, channel=channel)
        self.root = templates_root(templates_dir)
        self.name = _normalise_name(template_name)
        filename = self.name + TEMPLATE_SUFFIX
        self.display_path = display_path(self.root, str(self.root / filename))
        _check_variables(variables, self.display_path)
        self._template = load(self.root, filename, shown=self.name)
        self._variables: dict[str, object] = dict(variables)

    def render(self, recipient: RecipientView) -> str:
        """The message for one recipient; raises `TemplateError` with file and template line."""
        context = self._variables.copy()
        context["contact"] = ContactView(recipient)
        context["track"] = self._tracker.for_contact(recipient.contact_id)
        return render(self._template, context, self.root)

    def token(self, contact_id: int) -> str:
        """The recipient token `track()` adds for this contact in this campaign."""
        return self._tracker.token(contact_id)

    def problems(
        self, recipients: Iterable[RecipientView], *, max_len: int | None = None
    ) -> list[TemplateProblem]:
        """Test-render every recipient; the first error of each distinct problem, with counts."""
        tally = ProblemTally()
        for recipient in recipients:
            error = self.error_for(recipient, max_len)
            if error is not None:
                tally.add(error, recipient.external_id)
        return tally.problems()

    def error_for(self, recipient: RecipientView, max_len: int | None) -> TemplateError | None:
        """What goes wrong rendering for `recipient` (length included), or None."""
        try:
            text = self.render(recipient)
            if max_len is not None:
                check_length(
                    text, max_len, template=self.display_path, recipient=recipient.external_id
                )
        except TemplateError as exc:
            return exc
        return None


def validate_template(
    templates_dir: Path,
    template_name: str,
    variables: Mapping[str, str],
    recipients: Iterable[RecipientView],
    *,
    campaign: str,
    channel: str,
    tracking_secret: str,
    max_len: int | None = None,
) -> list[TemplateProblem]:
    """Compile and test-render for `recipients`; an empty list means nothing is wrong.

    A compile error is then the only problem (recipient None). With no recipients only
    compilation is checked: the attributes a real contact would carry cannot be guessed.
    """
    try:
        renderer = MessageRenderer(
            templates_dir,
            template_name,
            variables,
            campaign=campaign,
            channel=channel,
            tracking_secret=tracking_secret,
        )
    except TemplateError as exc:
        return [TemplateProblem(exc, None, 0)]
    return renderer.problems(recipients, max_len=max_len)


def _problem_key(error: TemplateError) -> tuple[object, ...]:
    """Errors at one place are one problem; each undefined name or sandbox hit is its own."""
    if error.kind == "length":
        return (error.kind,)
    detail = error.detail if error.kind in ("undefined", "sandbox") else None
    return (error.kind, error.path, error.lineno, detail)


def _normalise_name(name: str) -> str:
    cleaned = name.strip().removesuffix(TEMPLATE_SUFFIX)
    if not cleaned:
        raise TemplateError("the template name is empty", kind="not_found")
    return cleaned


def _check_variables(variables: Mapping[str, str], path: str) -> None:
    clash = sorted(RESERVED_NAMES.intersection(variables))
    if clash:
        names = ", ".join(map(repr, clash))
        raise TemplateError(
            f"{names}: reserved name(s), rename the --var", kind="variables", path=path
        )
