"""The operator HTTP API under `/v1`, on the same service layer as the CLI.

    GET    /v1/campaigns                          campaigns list
    POST   /v1/campaigns                          campaigns create (201)
    GET    /v1/campaigns/{name}                   campaigns show
    PATCH  /v1/campaigns/{name}                   campaigns edit (drafts, scheduled)
    DELETE /v1/campaigns/{name}                   campaigns delete (drafts; 204)
    GET    /v1/campaigns/{name}/preview?limit=    rendered messages for sample members
    GET    /v1/campaigns/{name}/plan              capacity per account, verdict, ETA
    GET    /v1/campaigns/{name}/status            campaigns status --json
    POST   /v1/campaigns/{name}/start?force=      start (or arm a cron campaign)
    POST   /v1/campaigns/{name}/pause|resume|cancel
    GET    /v1/campaigns/{name}/deliveries        the log: ?state= &account= &q= &limit= &after=
    GET    /v1/campaigns/{name}/deliveries.csv    the log as CSV (campaigns deliveries --csv)
    GET    /v1/segments                           segments list
    POST   /v1/segments                           segments add (201)
    GET    /v1/segments/count?where=              live member count of an unsaved expression
    GET    /v1/segments/{name}                    segments show
    DELETE /v1/segments/{name}                    segments delete (204)
    GET    /v1/accounts                           accounts list (health)
    GET    /v1/accounts/{name}                    one account's health
    POST   /v1/accounts/{name}/pause|resume
    GET    /v1/contacts?segment=&channel=&limit=  contacts list, with the total
    POST   /v1/contacts/import                    multipart: file, channel, encoding,
                                                  skip_invalid, dry_run (contacts import)
    GET    /v1/suppressions?limit=                contacts suppressions
    POST   /v1/suppressions                       contacts suppress
    DELETE /v1/suppressions/{external_id}?channel=    contacts unsuppress
    GET    /v1/inbox                              conversations waiting for a person
    GET    /v1/conversations?contact=             conversations show EXTERNAL_ID
    POST   /v1/conversations/{conversation}/reply reply CONVERSATION TEXT

Every route needs the bearer token (`api.auth`: `Authorization: Bearer SIYU_API_TOKEN`, or
this host only while no token is set). Refusals are `{"error": "<the CLI's message>"}`:
404 not found, 409 a conflict with the current state, 400 other bad input, 422 an invalid
field (named), 503 the database or Redis unreachable (`api.operator.errors`). Times are
ISO 8601 strings as the CLI's `--json` gives them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from sqlalchemy import Engine

from worker.api.operator import (
    accounts,
    campaigns,
    contacts,
    deliveries,
    inbox,
    segments,
    suppressions,
)
from worker.api.operator.base import Operator, authorisation
from worker.config import Settings
from worker.runtime import Context

RESOURCES = (campaigns, deliveries, segments, accounts, contacts, suppressions, inbox)


def operator_router(
    context: Callable[[], Context], settings: Settings, engine: Engine
) -> APIRouter:
    """The API's routes over the app's `settings` and `engine`; `context()` gives Redis and
    Celery to the routes that start, resume, cancel or reply."""
    ops = Operator(settings, engine, context)
    api = APIRouter(prefix="/v1")
    auth = authorisation(settings)
    for resource in RESOURCES:
        api.include_router(resource.router(ops), dependencies=[auth])
    return api
