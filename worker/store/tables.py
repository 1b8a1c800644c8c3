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
    Message,
    Segment,
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
segments = table_of(Segment)
suppressions = table_of(Suppression)
conversations = table_of(Conversation)
messages = table_of(Message)
