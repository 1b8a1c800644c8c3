"""The console's door: sign-in with the token, the session cookie, this-host-only without a
token, CSRF on every POST, and the language by Accept-Language (issue 12, item 2).

Through Starlette's TestClient against `create_app` with a real context (SQLite and
PostgreSQL, real Redis); the client's address is set to loopback or to another host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.world import add_accounts, add_campaign, add_contacts, make_context
from worker.api.app import create_app
from worker.campaigns.status import campaign_status
from worker.runtime import Context

TOKEN = "console-token-0123456789"
HERE = ("127.0.0.1", 50000)
ELSEWHERE = ("203.0.113.9", 50000)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def client(ctx: Context, address: tuple[str, int] = HERE) -> TestClient:
    return TestClient(create_app(ctx.settings, ctx.engine, ctx=ctx), client=address)


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_context(db_url, redis_url, tmp_path, api_token=TOKEN)
    add_accounts(context.engine, ["a1"])
    add_contacts(context.engine, 5)
    add_campaign(context, "c1", ["a1"])
    yield context
    context.engine.dispose()


def sign_in(http: TestClient, token: str = TOKEN) -> TestClient:
    form = http.get("/signin")
    assert form.status_code == 200
    http.post("/signin", data={"token": token, "csrf": csrf_of(form.text), "next": "/"})
    return http


def test_pages_redirect_to_sign_in_until_the_token_is_given(ctx: Context) -> None:
    http = client(ctx, ELSEWHERE)
    for path in ("/", "/campaigns/c1", "/accounts", "/contacts", "/inbox", "/campaigns/new"):
        response = http.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin?next=")
    page = http.get("/campaigns/c1")  # followed: the form, which comes back here afterwards
    assert 'id="signin-form"' in page.text and 'value="/campaigns/c1"' in page.text
    done = http.post(
        "/signin", data={"token": TOKEN, "csrf": csrf_of(page.text), "next": "/campaigns/c1"}
    )
    assert done.status_code == 200 and 'id="campaign-name"' in done.text
    assert http.get("/accounts").status_code == 200
    cookie = done.history[0].headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie, "reached over plain HTTP: a Secure cookie would never return"


def test_behind_https_the_session_cookie_is_secure(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    https = make_context(
        db_url, redis_url, tmp_path, api_token=TOKEN, public_url="https://ops.example.com"
    )
    app = create_app(https.settings, https.engine, ctx=https)
    http = TestClient(app, base_url="https://testserver", client=HERE)
    form = http.get("/signin")
    done = http.post(
        "/signin",
        data={"token": TOKEN, "csrf": csrf_of(form.text), "next": "/"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "; secure" in done.headers["set-cookie"].lower()
    assert http.get("/").status_code == 200, "signed in over HTTPS"
    https.engine.dispose()


def test_a_wrong_token_is_refused_and_signs_nobody_in(ctx: Context) -> None:
    http = client(ctx)
    form = http.get("/signin")
    wrong = http.post("/signin", data={"token": "not-it", "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401 and 'id="signin-error"' in wrong.text
    assert http.get("/", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session(ctx: Context) -> None:
    http = sign_in(client(ctx))
    page = http.get("/")
    assert page.status_code == 200 and 'id="signout-button"' in page.text
    http.post("/signout", data={"csrf": csrf_of(page.text)})
    assert http.get("/", follow_redirects=False).status_code == 303


def test_without_a_token_this_host_needs_no_sign_in_and_others_get_403(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    ctx = make_context(db_url, redis_url, tmp_path)
    here = client(ctx).get("/", follow_redirects=False)
    assert here.status_code == 200 and 'id="live"' in here.text
    away = client(ctx, ELSEWHERE).get("/", follow_redirects=False)
    assert away.status_code == 403 and "SIYU_API_TOKEN" in away.text
    ctx.engine.dispose()


@pytest.mark.parametrize("given", [None, "forged-token", "header"])
def test_a_post_without_the_sessions_csrf_token_is_403_and_changes_nothing(
    ctx: Context, given: str | None
) -> None:
    http = sign_in(client(ctx))
    data = {} if given in (None, "header") else {"csrf": given}
    headers = {"X-CSRF-Token": "wrong"} if given == "header" else {}
    response = http.post("/campaigns/c1/cancel", data=data, headers=headers)
    assert response.status_code == 403
    assert 'id="error-title"' in response.text and "CSRF" in response.text
    assert campaign_status(ctx.engine, "c1")["status"] == "draft"


def test_the_htmx_header_carries_the_csrf_token(ctx: Context) -> None:
    http = sign_in(client(ctx))
    token = csrf_of(http.get("/").text)
    response = http.post("/campaigns/c1/cancel", headers={"X-CSRF-Token": token})
    assert response.status_code == 200 and campaign_status(ctx.engine, "c1")["status"] == (
        "cancelled"
    )


def test_the_language_follows_accept_language_and_the_switch(ctx: Context) -> None:
    http = sign_in(client(ctx))
    zh = http.get("/campaigns/c1", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert "逐个收件人的发送记录" in zh.text and '<html lang="zh-Hans">' in zh.text
    en = http.get("/campaigns/c1", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Per-recipient log" in en.text and "逐个收件人" not in en.text
    assert "Per-recipient log" not in http.get("/campaigns/c1").text  # no header: Chinese
    http.get("/lang/en?next=/campaigns/c1")
    chosen = http.get("/campaigns/c1", headers={"Accept-Language": "zh-CN"})
    assert "Per-recipient log" in chosen.text


def test_a_service_error_is_a_page_in_our_language_quoting_the_cli(ctx: Context) -> None:
    http = sign_in(client(ctx))
    page = http.get("/campaigns/nope", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 404
    assert "未找到" in page.text and "no campaign named &#39;nope&#39;" in page.text
    assert "Traceback" not in page.text


def test_htmx_requests_are_sent_to_sign_in_whole_and_the_api_gets_no_cookie(ctx: Context) -> None:
    http = client(ctx)
    polled = http.get("/live", headers={"HX-Request": "true"}, follow_redirects=False)
    assert polled.status_code == 204 and polled.headers["HX-Redirect"] == "/signin?next=/live"
    assert "set-cookie" not in http.get("/healthz").headers
    assert "siyu_console" in http.get("/signin").headers["set-cookie"]
