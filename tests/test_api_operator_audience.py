"""Segments, contact upload, suppressions and accounts through `/v1`: the CLI's documents, its
validation and its messages (a CSV's bad row by line, an expression's error by column).

SQLite and PostgreSQL, real Redis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import Siyu
from tests.support.operator import Api, error_of
from tests.support.world import add_accounts, add_contacts

GOOD_AND_BAD = (
    "external_id,name,tags,city\n"
    "u1,张三,vip;python,上海\n"
    "u2,李四,python,北京\n"
    "u1,王五,vip,上海\n"  # line 4: the same external_id again
    "u3,赵六,,深圳\n"
)


def upload(api: Api, text: str, **form: Any) -> Any:
    files = {"file": ("contacts.csv", text.encode("utf-8"), "text/csv")}
    data = {"channel": "memory", **{k: str(v).lower() for k, v in form.items()}}
    return api.client().post("/v1/contacts/import", files=files, data=data)


def contacts(api: Api) -> Any:
    return api.client().get("/v1/contacts", params={"limit": 1000}).json()


def test_an_upload_with_a_bad_row_is_refused_by_line_and_imports_nothing(
    api: Api, siyu: Siyu, tmp_path: Path
) -> None:
    refused = upload(api, GOOD_AND_BAD)
    message = error_of(refused, 400)
    assert message == (
        "contacts.csv: 1 invalid row(s), nothing imported: line 4: external_id 'u1' appears "
        "again (first on line 2) (fix them, or pass --skip-invalid to import the other rows)"
    )
    assert refused.json()["rejected"] == [
        {"line": 4, "message": "external_id 'u1' appears again (first on line 2)"}
    ]
    assert contacts(api) == {"total": 0, "items": []}
    path = tmp_path / "contacts.csv"
    path.write_text(GOOD_AND_BAD, encoding="utf-8")
    cli = siyu("contacts", "import", str(path), "--channel", "memory")
    assert cli.stderr.strip() == f"error: {message.replace('contacts.csv', str(path), 1)}"


def test_with_skip_invalid_the_good_rows_are_imported_and_the_bad_one_reported(
    api: Api,
) -> None:
    dry = upload(api, GOOD_AND_BAD, skip_invalid=True, dry_run=True).json()
    assert (dry["dry_run"], dry["created"]) == (True, 3) and contacts(api)["total"] == 0
    report = upload(api, GOOD_AND_BAD, skip_invalid=True)
    assert report.status_code == 200, report.text
    assert report.json() == {
        "file": "contacts.csv",
        "channel": "memory",
        "dry_run": False,
        "rows": 4,
        "created": 3,
        "updated": 0,
        "rejected": [{"line": 4, "message": "external_id 'u1' appears again (first on line 2)"}],
    }
    listed = contacts(api)
    assert listed["total"] == 3
    assert [(c["external_id"], c["tags"], c["attrs"]) for c in listed["items"]] == [
        ("u1", ["vip", "python"], {"city": "上海"}),
        ("u2", ["python"], {"city": "北京"}),
        ("u3", [], {"city": "深圳"}),
    ]


def test_an_upload_is_refused_for_what_the_cli_refuses(api: Api) -> None:
    gbk = {"file": ("excel.csv", "external_id,name\nu1,张三\n".encode("gb18030"), "text/csv")}
    http = api.client()
    refused = error_of(http.post("/v1/contacts/import", files=gbk), 400)
    assert refused.startswith("excel.csv: line 2 is not valid UTF-8")
    assert "--encoding gb18030" in refused
    ok = http.post("/v1/contacts/import", files=gbk, data={"encoding": "gb18030"})
    assert ok.status_code == 200 and ok.json()["created"] == 1
    assert error_of(http.post("/v1/contacts/import"), 422) == "field 'file': Field required"
    unknown = upload(api, "external_id\nu9\n", channel="nope")
    assert "nope" in error_of(unknown, 400)


def test_a_segment_count_for_an_unsaved_expression_and_its_errors(api: Api, siyu: Siyu) -> None:
    add_contacts(api.ctx.engine, 12)
    add_contacts(api.ctx.engine, 3, start=13, tags=("vip",))
    http = api.client()
    count = http.get("/v1/segments/count", params={"where": "tag = vip or city = 上海"})
    assert count.json() == {"where": "tag = vip or city = 上海", "members": 15, "notes": []}
    assert http.get("/v1/segments/count", params={"where": "tag = vip"}).json()["members"] == 3
    assert http.get("/v1/segments").json() == [], "nothing was saved"

    broken = "tag = vip and (city = 上海"
    message = error_of(http.get("/v1/segments/count", params={"where": broken}), 400)
    assert message.startswith("segment expression: column ") and broken in message
    cli = siyu("segments", "add", "s", "--where", broken)
    assert cli.stderr.strip() == f"error: {message}"
    typo = error_of(http.get("/v1/segments/count", params={"where": "tga = vip"}), 400)
    assert typo.startswith("segment expression: column 1: ")
    assert error_of(http.get("/v1/segments/count"), 422) == (
        "query parameter 'where': Field required"
    )


def test_segments_are_created_shown_listed_and_deleted(api: Api, siyu: Siyu) -> None:
    add_contacts(api.ctx.engine, 5)
    http = api.client()
    created = http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    assert created.status_code == 201
    assert created.json() == {"name": "py", "where": "tag = python", "members": 5, "notes": []}
    again = http.post("/v1/segments", json={"name": "py", "where": "tag = python"})
    assert error_of(again, 409) == "segment 'py' already exists; pick another name"
    assert http.get("/v1/segments/py").json() == json.loads(
        siyu("segments", "show", "py", "--json").stdout
    )
    assert http.get("/v1/segments").json() == json.loads(siyu("segments", "list", "--json").stdout)
    assert http.delete("/v1/segments/py").status_code == 204
    assert error_of(http.get("/v1/segments/py"), 404).startswith("segment 'py' not found")


def test_accounts_show_their_health_and_are_paused_and_resumed(api: Api, siyu: Siyu) -> None:
    add_accounts(api.ctx.engine, ["a1", "a2"])
    http = api.client()
    assert http.get("/v1/accounts").json() == json.loads(siyu("accounts", "list", "--json").stdout)
    paused = http.post("/v1/accounts/a2/pause").json()
    assert (paused["name"], paused["state"], paused["state_reason"]) == ("a2", "paused", "operator")
    assert http.get("/v1/accounts/a2").json()["state"] == "paused"
    assert http.post("/v1/accounts/a2/resume").json()["state"] == "active"
    assert error_of(http.post("/v1/accounts/a9/pause"), 404) == (
        "no account named 'a9' (known: a1, a2)"
    )


def test_suppressions_are_added_listed_and_removed(api: Api, siyu: Siyu) -> None:
    add_contacts(api.ctx.engine, 3)
    http = api.client()
    body = {"external_ids": ["u000001", "u000002"], "reason": "complaint"}
    assert http.post("/v1/suppressions", json=body).json() == {
        "external_ids": 2,
        "contacts": 2,
        "already": 0,
        "reason_updated": 0,
    }
    listed = http.get("/v1/suppressions").json()
    assert listed == json.loads(siyu("contacts", "suppressions", "--json").stdout)
    assert [(s["external_id"], s["reason"]) for s in listed] == [
        ("u000001", "complaint"),
        ("u000002", "complaint"),
    ]
    unknown = http.post("/v1/suppressions", json={"external_ids": ["u000001", "zz"]})
    assert "nothing suppressed" in error_of(unknown, 400) and "'zz'" in unknown.text
    removed = http.delete("/v1/suppressions/u000001").json()
    assert removed == {"removed": 1, "not_suppressed": [], "unknown": []}
    assert [s["external_id"] for s in http.get("/v1/suppressions").json()] == ["u000002"]
    assert error_of(http.post("/v1/suppressions", json={"external_ids": []}), 422).startswith(
        "field 'external_ids': List should have at least 1 item"
    )
