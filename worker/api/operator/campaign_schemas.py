"""Request and response models of `/v1/campaigns`: the CLI's `--json` documents, typed.

Times are ISO 8601 strings, as the CLI prints them (status, deliveries and plan in UTC; list
and show in the campaign's zone, with its offset).
"""

from __future__ import annotations

from pydantic import Field

from worker.api.operator.base import Body, Document


class Window(Document):
    start: str | None
    end: str | None
    tz: str


class Counts(Document):
    pending: int
    sent: int
    failed: int
    skipped: int
    unknown: int


class CampaignCreate(Body):
    """`campaigns create`: the template is rendered for every member before it is stored."""

    name: str
    segment: str
    template: str = Field(description="Name of templates/<name>.j2, without .j2")
    accounts: list[str] = Field(description="Sender accounts, in order")
    vars: dict[str, str] = Field(default_factory=dict, description="Template variables")
    start: str | None = Field(None, description="ISO 8601; without an offset, in `tz`")
    end: str | None = Field(None, description="Planned end, ISO 8601; without an offset, in `tz`")
    cron: str | None = Field(None, description="Recurring: a run at each due time")
    tz: str = "Asia/Shanghai"
    kind: str = Field("marketing", description="marketing | service")
    skip_unrenderable: bool = False


class CampaignEdit(Body):
    """`campaigns edit`: fields left out keep their values (drafts and scheduled only)."""

    segment: str | None = None
    template: str | None = None
    accounts: list[str] | None = Field(None, description="Replaces the sender list")
    vars: dict[str, str] = Field(default_factory=dict, description="Sets these variables")
    unset_vars: list[str] = Field(default_factory=list, description="Removes these variables")
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    tz: str | None = None
    kind: str | None = None
    skip_unrenderable: bool | None = Field(
        None, description="true: skip members the template cannot render; false: refuse"
    )


class CampaignSummary(Document):
    """An item of `campaigns list --json`; progress is the latest run's."""

    name: str
    status: str
    kind: str
    sent: int
    total: int
    window: Window


class SegmentRef(Document):
    name: str | None
    where: str | None


class Run(Document):
    id: int
    status: str
    start: str | None
    end: str | None
    started_at: str | None
    finished_at: str | None
    total: int
    counts: Counts


class Firing(Document):
    due: str
    status: str
    reason: str | None
    run: int | None
    run_status: str | None
    total: int
    counts: Counts


class CampaignDetail(Document):
    """`campaigns show --json`: the definition, its runs, a cron campaign's due times."""

    name: str
    status: str
    kind: str
    segment: SegmentRef
    template: str
    vars: dict[str, str]
    accounts: list[str]
    start: str | None
    end: str | None
    tz: str
    cron: str | None
    created_at: str
    runs: list[Run]
    next_due: str | None
    firings: list[Firing]


class AccountProgress(Document):
    sent: int
    pending: int
    state: str


class CampaignStatus(Document):
    """`campaigns status --json` (the contract's document, with the window)."""

    name: str
    status: str
    total: int
    counts: Counts
    accounts: dict[str, AccountProgress]
    eta: str | None
    window: Window


class PreviewMessage(Document):
    """A message exactly as it would be sent to a sample member; nothing is sent."""

    external_id: str
    name: str
    account: str | None
    text: str


class AccountPlan(Document):
    account: str
    state: str
    policy: str
    capacity: int | None
    other_load: int
    assigned: int
    capped: int
    spare: int | None
    fits: bool
    eta: str | None
    short: int
    why: str | None


class CampaignPlan(Document):
    """`campaigns plan --json` and the verdict line `campaigns plan` ends with."""

    name: str
    window: Window
    members: int
    accounts: list[AccountPlan]
    excluded: dict[str, int]
    capped: int
    will_send: int
    not_sent: dict[str, int]
    fits: bool
    would_not_fit: int
    why: list[str]
    eta: str | None
    verdict: str


class Transition(Document):
    """What a start, pause, resume or cancel did: the status now, and what to look at."""

    name: str
    status: str
    message: str
    warnings: list[str] = Field(default_factory=list)


class Delivery(Document):
    """A row of `campaigns deliveries --json`."""

    external_id: str
    name: str
    channel: str
    account: str | None
    status: str
    reason: str | None
    attempts: int
    last_error: str | None
    provider_message_id: str | None
    updated_at: str | None
    sent_at: str | None


class DeliveryPage(Document):
    """One page of the log; pass `next` as `after` for the following one (null: the last)."""

    run: int | None
    items: list[Delivery]
    next: str | None
    next_url: str | None = Field(None, description="The following page's URL, same filters")
