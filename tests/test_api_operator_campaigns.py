"""`/v1/campaigns` through the HTTP client: a campaign defined, started, paused, resumed and
cancelled; its status the CLI's document; refusals carrying the CLI's messages.

SQLite and PostgreSQL, real Redis (start and resume enqueue through Celery's broker).
"""

from __future__ import annotations

import json

import pytest

from tests.support.cli import Siyu
from tests.support.operator import Api, error_of
from tests.support.rows import drain
from tests.support.world import VARS, add_accounts, add_campaign, add_contacts, start
from worker.campaigns.materialise import materialise


def world(api: Api, contacts: int = 30) -> None:
    add_accounts(api.ctx.engine, ["a1", "a2"])
    add_contacts(api.ctx.engine, contacts)


CREATE = {
    "name": "c1",
    "segment": "py",
    "template": "invite",
    "accounts": ["a1", "a2"],
    "vars": VARS,
}


def test_a_campaign_is_created_started_paused_resumed_and_cancelled_through_the_api(
    api: Api,
) -> None:
    world(api)
    http = api.client()
    segment = http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    assert segment.status_code == 201 and segment.json()["members"] == 30

    created = http.post("/v1/campaigns", json=CREATE)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft" and created.json()["accounts"] == ["a1", "a2"]
    taken = error_of(http.post("/v1/campaigns", json=CREATE), 409)
    assert taken == "a campaign named 'c1' already exists"

    edited = http.patch("/v1/campaigns/c1", json={"vars": {"course_name": "Go 入门"}})
    assert edited.status_code == 200 and edited.json()["vars"]["course_name"] == "Go 入门"
    preview = http.get("/v1/campaigns/c1/preview", params={"limit": 2}).json()
    assert len(preview) == 2 and all("Go 入门 开课啦" in m["text"] for m in preview)
    plan = http.get("/v1/campaigns/c1/plan").json()
    assert plan["members"] == 30 and plan["verdict"] == "fits: all 30 members can be sent"

    started = http.post("/v1/campaigns/c1/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    assert started.json()["message"] == "campaign c1 is running"
    assert error_of(http.patch("/v1/campaigns/c1", json={"kind": "service"}), 409) == (
        "campaign 'c1' is running: only draft and scheduled campaigns can be edited; "
        "cancel it and create a new campaign instead"
    )
    assert "this needs it to be draft" in error_of(http.post("/v1/campaigns/c1/start"), 409)

    assert http.post("/v1/campaigns/c1/pause").json()["status"] == "paused"
    assert http.get("/v1/campaigns/c1/status").json()["status"] == "paused"
    assert error_of(http.post("/v1/campaigns/c1/pause"), 409) == (
        "campaign 'c1' is paused; this needs it to be running or scheduled"
    )
    assert http.post("/v1/campaigns/c1/resume").json()["status"] == "running"
    cancelled = http.post("/v1/campaigns/c1/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["message"] == (
        "campaign c1 cancelled; unsent deliveries are skipped (cancelled)"
    )
    assert "only drafts can be deleted" in error_of(http.delete("/v1/campaigns/c1"), 409)
    assert [(c["name"], c["status"]) for c in http.get("/v1/campaigns").json()] == [
        ("c1", "cancelled")
    ]


def test_a_draft_is_deleted_and_then_not_found(api: Api) -> None:
    world(api)
    http = api.client()
    http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    assert http.post("/v1/campaigns", json={**CREATE, "name": "c2"}).status_code == 201
    deleted = http.delete("/v1/campaigns/c2")
    assert deleted.status_code == 204 and deleted.content == b""
    assert error_of(http.get("/v1/campaigns/c2"), 404) == "no campaign named 'c2' (none exist yet)"


def test_the_status_show_and_list_documents_are_the_clis(api: Api, siyu: Siyu) -> None:
    world(api, 40)
    accounts = add_accounts(api.ctx.engine, [])
    add_campaign(api.ctx, "c1", ["a1", "a2"])
    materialise(api.ctx, start(api.ctx, "c1").id)  # type: ignore[arg-type]
    drain(api.ctx, [accounts["a1"]])  # a1's share sent, a2's pending
    http = api.client()

    status = http.get("/v1/campaigns/c1/status").json()
    cli = json.loads(siyu("campaigns", "status", "c1", "--json").stdout)
    assert status.pop("eta") is not None and cli.pop("eta") is not None
    assert status == cli
    assert status["counts"]["sent"] == status["accounts"]["a1"]["sent"] > 0
    assert status["counts"]["pending"] == status["accounts"]["a2"]["pending"] > 0
    for path, args in (
        ("/v1/campaigns/c1", ("campaigns", "show", "c1")),
        ("/v1/campaigns", ("campaigns", "list")),
    ):
        assert http.get(path).json() == json.loads(siyu(*args, "--json").stdout), path
    plan = http.get("/v1/campaigns/c1/plan").json()  # from now on: times differ
    cli_plan = json.loads(siyu("campaigns", "plan", "c1", "--json").stdout)
    assert set(plan) == {*cli_plan, "verdict"}
    assert [a["assigned"] for a in plan["accounts"]] == [
        a["assigned"] for a in cli_plan["accounts"]
    ]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"segment": "py", "template": "invite"},
            422,
            "field 'name': Field required; field 'accounts': Field required",
        ),
        (
            {**CREATE, "acounts": ["a1"]},
            422,
            "field 'acounts': Extra inputs are not permitted",
        ),
        ({**CREATE, "accounts": "a1"}, 422, "field 'accounts': Input should be a valid list"),
        ({**CREATE, "kind": "spam"}, 400, "--kind must be one of marketing, service, got 'spam'"),
        ({**CREATE, "segment": "vip"}, 404, "no segment named 'vip' (known: py)"),
    ],
)
def test_a_bad_campaign_is_refused_with_a_message_naming_what_to_fix(
    api: Api, body: dict[str, object], status: int, message: str
) -> None:
    world(api)
    http = api.client()
    http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    assert error_of(http.post("/v1/campaigns", json=body), status) == message
    assert http.get("/v1/campaigns").json() == []


def test_an_edit_with_nothing_to_change_and_a_query_out_of_range_are_refused(api: Api) -> None:
    world(api)
    http = api.client()
    http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    http.post("/v1/campaigns", json=CREATE)
    assert error_of(http.patch("/v1/campaigns/c1", json={}), 400) == (
        "nothing to change; give at least one field"
    )
    assert error_of(http.get("/v1/campaigns/c1/preview?limit=0"), 422) == (
        "query parameter 'limit': Input should be greater than or equal to 1"
    )
