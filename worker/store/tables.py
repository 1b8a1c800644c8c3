"""The Core `Table` of each model, typed, for set-based SQL (claims, bulk updates, counts)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table
from sqlmodel import SQLModel

from worker.store.models import (
    Account,
    Campaign,
    CampaignAccount,
    CampaignFiring,
    CampaignRun,
    Contact,
    Conversation,
    Delivery,
    DeliveryCount,
    DeliveryCountDelta,
    Message,
    Segment,
    SentMinute,
    SentMinuteDelta,
    Suppression,
)


def table_of(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


accounts = table_of(Account)
campaigns = table_of(Campaign)
campaign_accounts = table_of(CampaignAccount)
campaign_firings = table_of(CampaignFiring)
campaign_runs = table_of(CampaignRun)
contacts = table_of(Contact)
deliveries = table_of(Delivery)
delivery_counts = table_of(DeliveryCount)
delivery_count_deltas = table_of(DeliveryCountDelta)
sent_minutes = table_of(SentMinute)
sent_minute_deltas = table_of(SentMinuteDelta)
segments = table_of(Segment)
suppressions = table_of(Suppression)
conversations = table_of(Conversation)
messages = table_of(Message)
