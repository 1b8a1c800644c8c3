"""`/v1/campaigns/{name}/deliveries`: filters, keyset pages that visit every row once (also
while the campaign sends), and the CSV export, byte for byte the CLI's.

SQLite and PostgreSQL, real Redis; lanes run in-process on the memory channel.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.support.cli import Siyu
from tests.support.operator import TOKEN, Api, error_of
from tests.support.rows import drain
from tests.support.serving import serving
from tests.support.world import add_accounts, add_campaign, add_contacts, start
from worker.campaigns.materialise import materialise
from worker.campaigns.status import iter_deliveries
from worker.store import tables

D, CT = tables.deliveries.c, tables.contacts.c
TRICKY_NAME = '王五, "Jr."\n第二行'


def half_sent(api: Api, members: int = 45) -> dict[str, int]:
    """c1 over a1 and a2: a1's share sent, a2's pending but for two failed rows."""
    accounts = add_accounts(api.ctx.engine, ["a1", "a2"])
    add_contacts(api.ctx.engine, members)
    with api.ctx.engine.begin() as conn:
        conn.execute(update(tables.contacts).where(CT.id == 2).values(name=TRICKY_NAME))
    add_campaign(api.ctx, "c1", ["a1", "a2"])
    materialise(api.ctx, start(api.ctx, "c1").id)  # type: ignore[arg-type]
    drain(api.ctx, [accounts["a1"]])
    a2_rows = select(D.id).where(D.account_id == accounts["a2"]).order_by(D.id).limit(2)
    with api.ctx.engine.begin() as conn:
        failed = list(conn.execute(a2_rows).scalars())
        conn.execute(update(tables.deliveries).where(D.id.in_(failed)).values(state="failed"))
    return accounts


def walk(http: TestClient, limit: int, **filters: str) -> tuple[list[dict[str, Any]], int]:
    """Every page of c1's log by following `next`; (rows, pages)."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, **filters}
    pages = 0
    while True:
        page = http.get("/v1/campaigns/c1/deliveries", params=params)
        assert page.status_code == 200, page.text
        pages += 1
        rows += page.json()["items"]
        if page.json()["next"] is None:
            return rows, pages
        params["after"] = page.json()["next"]


def expected(api: Api, state: str | None = None, account: str | None = None, q: str = "") -> Any:
    """The CLI's `deliveries --json` rows, filtered here in Python."""
    return [
        row
        for row in iter_deliveries(api.ctx.engine, "c1")
        if (state is None or row["status"] == state)
        and (account is None or row["account"] == account)
        and (q.lower() in row["external_id"].lower() or q.lower() in row["name"].lower())
    ]


FILTERS: list[dict[str, str]] = [
    {},
    {"state": "sent"},
    {"account": "a2"},
    {"account": "a2", "state": "failed"},
    {"q": "00001"},  # u000001, u000010..u000019
    {"q": "U00004", "state": "pending"},  # any case
    {"q": "学员3"},  # the name
    {"q": "%"},  # a LIKE wildcard is a character like any other: nobody
]


def test_the_pages_of_each_filter_hold_exactly_its_rows_once_in_order(api: Api) -> None:
    half_sent(api)
    http = api.client()
    for filters in FILTERS:
        want = expected(api, filters.get("state"), filters.get("account"), filters.get("q", ""))
        for limit in (7, 1000):
            rows, pages = walk(http, limit, **filters)
            assert rows == want, (filters, limit)
            assert pages == max(1, math.ceil(len(want) / limit)), (filters, limit)
    assert len(expected(api, q="00001")) == 11 and not expected(api, q="%")


def test_a_walk_while_the_campaign_sends_sees_every_row_exactly_once(api: Api) -> None:
    accounts = half_sent(api)
    http = api.client()
    first = http.get("/v1/campaigns/c1/deliveries", params={"limit": 10}).json()
    second = http.get(first["next_url"]).json()  # the link keeps the filters and the limit
    drain(api.ctx, [accounts["a2"]])  # a2 sends its share between two pages
    seen = first["items"] + second["items"]
    rest, _ = walk(http, 10, after=second["next"])
    seen += rest
    ids = [row["external_id"] for row in seen]
    assert len(ids) == len(set(ids)) == 45
    assert {r["status"] for r in rest} <= {"sent", "failed"}, "later pages show the sends"


def test_a_cursor_is_checked_and_a_bad_filter_gets_the_clis_message(api: Api) -> None:
    half_sent(api)
    add_campaign(api.ctx, "c2", ["a1"])
    materialise(api.ctx, start(api.ctx, "c2").id)  # type: ignore[arg-type]
    http = api.client()
    other = http.get("/v1/campaigns/c2/deliveries", params={"limit": 1}).json()["next"]
    url = "/v1/campaigns/c1/deliveries"
    assert error_of(http.get(url, params={"after": other}), 400) == (
        "after: the cursor belongs to another campaign than 'c1'"
    )
    assert error_of(http.get(url, params={"after": "garbage!"}), 400) == (
        "after: 'garbage!' is not a cursor; pass the `next` of the previous page"
    )
    assert error_of(http.get(url, params={"state": "gone"}), 400).startswith(
        "--status must be one of pending, claimed, sending, sent"
    )
    assert error_of(http.get(url, params={"limit": 1001}), 422).startswith(
        "query parameter 'limit': Input should be less than or equal to 1000"
    )
    assert error_of(http.get("/v1/campaigns/c9/deliveries"), 404).startswith(
        "no campaign named 'c9'"
    )


def test_the_csv_export_is_the_clis_byte_for_byte_over_real_http(api: Api, siyu: Siyu) -> None:
    half_sent(api)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serving(api.app) as url:
        whole = httpx.get(f"{url}/v1/campaigns/c1/deliveries.csv", headers=headers)
        failed = httpx.get(
            f"{url}/v1/campaigns/c1/deliveries.csv", params={"state": "failed"}, headers=headers
        )
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == "text/csv; charset=utf-8"
    assert whole.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''c1-deliveries.csv"
    )
    cli = siyu("campaigns", "deliveries", "c1", "--csv").stdout
    assert whole.content == cli.encode("utf-8") and cli.count("\r\n") == 46  # the name's is "\n"
    assert '"王五, ""Jr.""\n第二行"' in whole.text  # quoted as Excel reads it
    failed_cli = siyu("campaigns", "deliveries", "c1", "--csv", "--status", "failed").stdout
    assert failed.text == failed_cli and failed_cli.count("\r\n") == 3


def test_the_csv_export_takes_the_pages_filters(api: Api, siyu: Siyu) -> None:
    half_sent(api)
    http = api.client()
    lines = http.get("/v1/campaigns/c1/deliveries.csv", params={"account": "a2", "q": "U0000"})
    body = lines.text.split("\r\n")
    assert body[0] == "\ufeffexternal_id,name,account,state,reason,last_error,attempts,sent_at"
    want = {r["external_id"] for r in expected(api, account="a2", q="U0000")}
    assert {line.split(",")[0] for line in body[1:] if line} == want and want
    assert error_of(http.get("/v1/campaigns/nope/deliveries.csv"), 404).startswith(
        "no campaign named 'nope'"
    )
