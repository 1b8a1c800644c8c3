"""The console's pages with real data: dashboard, wizard, campaign page and its actions, the
per-recipient log, accounts, the contacts upload and the inbox (issue 12, item 2).

Through Starlette's TestClient against `create_app` with a real context (SQLite and
PostgreSQL, real Redis), signed in with the token; English pages unless a test says not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.support.world import add_accounts, add_campaign, add_contacts, make_reply_context, start
from worker.api.app import create_app
from worker.campaigns.materialise import materialise
from worker.campaigns.status import campaign_status
from worker.replies.handle import handle_inbound
from worker.replies.inbound import InboundPayload, record_inbound
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

TOKEN = "console-token-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
VARS = "course_name=Python 入门\ncourse_url=https://edu.example.com/py\ngroup_url=https://g.example.com/1"
D, CT, M = tables.deliveries.c, tables.contacts.c, tables.messages.c


class Console:
    """A signed-in browser without JavaScript: forms post with their CSRF field."""

    def __init__(self, ctx: Context) -> None:
        app = create_app(ctx.settings, ctx.engine, ctx=ctx)
        self.http = TestClient(app, client=("127.0.0.1", 50000))
        self.http.headers["Accept-Language"] = "en"
        form = self.http.get("/signin")
        self.csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
        self.http.post("/signin", data={"token": TOKEN, "csrf": self.csrf})
        self.csrf = CSRF.search(self.http.get("/").text).group(1)  # type: ignore[union-attr]

    def get(self, path: str, **params: str) -> str:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.text

    def post(self, path: str, data: dict[str, object] | None = None, **kw: object) -> str:
        response = self.http.post(path, data={"csrf": self.csrf, **(data or {})}, **kw)  # type: ignore[arg-type]
        assert response.status_code < 500, response.text
        return response.text


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    context = make_reply_context(db_url, redis_url, tmp_path, api_token=TOKEN)
    add_accounts(context.engine, ["a1", "a2"], channel="mock", url="http://127.0.0.1:9")
    add_contacts(context.engine, 12, channel="mock")
    yield context
    context.engine.dispose()


@pytest.fixture
def console(ctx: Context) -> Console:
    return Console(ctx)


def half_sent(ctx: Context, name: str, sent: int) -> int:
    """Start `name`, materialise it, and mark its first `sent` deliveries sent just now."""
    run_id = start(ctx, name).id
    assert run_id is not None
    materialise(ctx, run_id)
    with ctx.engine.begin() as conn:
        ids = conn.execute(select(D.id).where(D.run_id == run_id).order_by(D.id).limit(sent))
        conn.execute(
            update(tables.deliveries)
            .where(D.id.in_([i for (i,) in ids]))
            .values(state="sent", sent_at=utcnow(), attempts=1)
        )
    return run_id


def test_the_dashboard_shows_live_campaigns_progress_and_the_sends_per_minute(
    ctx: Context, console: Console
) -> None:
    add_campaign(ctx, "live1", ["a1", "a2"])
    add_campaign(ctx, "draft1", ["a1"])
    half_sent(ctx, "live1", 5)
    page = console.get("/")
    row = re.search(r'<tr data-testid="live-campaign" data-name="live1".*?</tr>', page, re.S)
    assert row and 'value="5" max="12"' in row.group(0) and "5 / 12 (42%)" in text_of(row.group(0))
    assert 'data-name="draft1"' not in page  # drafts are not live
    chart = re.search(r'<svg .*?id="rate-chart".*?</svg>', page, re.S)
    assert chart and "<title" in chart.group(0)
    accounts = re.findall(r'<polyline class="series" data-account="([^"]+)"', chart.group(0))
    assert sorted(accounts) == ["a1", "a2"]
    assert re.search(r"a1: \d+; a2: \d+", chart.group(0))  # the description sums them
    fragment = console.get("/live")
    assert fragment.lstrip().startswith('<section id="live"') and 'hx-trigger="every 5s' in fragment


def test_the_wizard_counts_previews_creates_and_shows_the_plan_before_start(
    ctx: Context, console: Console
) -> None:
    live = console.get(
        "/campaigns/new/live", segment_mode="new", where="tag = python", template="invite",
        accounts="a1", variables=VARS, name="w1",
    )  # fmt: skip
    assert '<span id="member-count" data-testid="member-count">12' in live
    assert "学员1，Python 入门 开课啦" in live
    typo = console.get("/campaigns/new/live", segment_mode="new", where="tag = pyton")
    assert "column 7" in typo and "did you mean &#39;python&#39;" in typo
    missing = console.get(
        "/campaigns/new/live", segment_mode="new", where="tag = python", template="invite",
        accounts="a1",
    )  # fmt: skip
    assert 'id="preview-error"' in missing and "course_name" in missing
    form = {
        "name": "w1", "segment_mode": "new", "where": "tag = python", "template": "invite",
        "accounts": ["a1", "a2"], "variables": VARS, "tz": "Asia/Shanghai", "kind": "marketing",
    }  # fmt: skip
    page = console.post("/campaigns/new", form)
    assert 'id="campaign-name">w1<' in page and 'data-testid="flash-ok"' in page
    assert 'id="plan-verdict" data-fits="yes"' in page
    assert "Fits: all 12 members can be sent." in text_of(page)
    assert 'id="start-button"' in page and page.count('data-testid="preview-sample"') == 3
    again = console.post("/campaigns/new", form)
    assert "already exists" in again and 'id="wizard-error"' in again


def test_start_pause_resume_and_cancel_change_the_status_and_refusals_quote_the_cli(
    ctx: Context, console: Console
) -> None:
    add_campaign(ctx, "c1", ["a1"])
    refused = console.post("/campaigns/c1/pause")
    assert 'data-testid="flash-error"' in refused and "&#39;c1&#39; is draft" in refused
    assert campaign_status(ctx.engine, "c1")["status"] == "draft"
    steps = [("start", "running"), ("pause", "paused"), ("resume", "running"),
             ("cancel", "cancelled")]  # fmt: skip
    for action, status in steps:
        page = console.post(f"/campaigns/c1/{action}")
        assert campaign_status(ctx.engine, "c1")["status"] == status, action
        assert f'id="campaign-status" data-status="{status}"' in page
        assert f"Campaign c1 is now {status}." in page


def test_the_log_filters_searches_pages_by_keyset_and_exports_csv(
    ctx: Context, console: Console
) -> None:
    add_campaign(ctx, "c1", ["a1", "a2"])
    half_sent(ctx, "c1", 4)
    page = console.get("/campaigns/c1")
    assert page.count('data-testid="log-row"') == 12
    assert '<dd data-testid="count-sent">4</dd>' in page
    sent = console.get("/campaigns/c1", state="sent")
    assert sent.count('data-state="sent"') == 4 and 'data-state="pending"' not in sent
    one = console.get("/campaigns/c1", q="u000011")
    assert one.count('data-testid="log-row"') == 1 and "学员11" in one
    from worker.console import deliveries

    run_id = campaign_run(ctx, "c1")
    first = deliveries.log_page(ctx.engine, run_id, limit=5)
    second = deliveries.log_page(ctx.engine, run_id, after=first.last_id, limit=5)
    third = deliveries.log_page(ctx.engine, run_id, after=second.last_id, limit=5)
    ids = [r["id"] for page in (first, second, third) for r in page.rows]
    assert ids == sorted(ids) and len(set(ids)) == 12 and len(third.rows) == 2
    assert first.has_after and second.has_after and not third.has_after
    assert 'id="log-next"' not in console.get("/campaigns/c1", q="u0000")  # 9 rows: one page
    csv = console.http.get("/campaigns/c1/deliveries.csv", params={"state": "sent"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("external_id,name,account,state") and len(lines) == 5


def campaign_run(ctx: Context, name: str) -> int:
    with ctx.engine.connect() as conn:
        found = conn.execute(
            select(func.max(tables.campaign_runs.c.id))
            .join(tables.campaigns)
            .where(tables.campaigns.c.name == name)
        ).scalar_one()
    return int(found)


def test_accounts_show_state_sent_today_and_current_rate(ctx: Context, console: Console) -> None:
    add_campaign(ctx, "c1", ["a1"])
    half_sent(ctx, "c1", 3)
    page = console.get("/accounts")
    row = re.search(r'<tr data-testid="account-row" data-account="a1".*?</tr>', page, re.S)
    assert row and '<td data-testid="sent-today">3</td>' in row.group(0)
    assert "0.6 / min" in text_of(row.group(0))  # 3 sends over the last 5 minutes
    assert 'data-state="active"' in row.group(0)


def test_a_csv_with_a_bad_row_shows_its_line_and_imports_nothing(
    ctx: Context, console: Console
) -> None:
    bad = "external_id,name\nn1,甲\n,乙\nn3,丙\n".encode()
    page = console.post("/contacts", {"channel": "mock"}, files={"file": ("new.csv", bad)})
    assert 'data-testid="rejected-row" data-line="3"' in page and "new.csv line 3" in page
    assert "nothing imported" in page
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.contacts)).scalar() == 12
    good = "external_id,name\nn1,甲\nn2,乙\n".encode()
    dry = console.post(
        "/contacts", {"channel": "mock", "dry_run": "1"}, files={"file": ("new.csv", good)}
    )
    assert 'data-created="2"' in dry and "Dry run, nothing written" in dry
    done = console.post("/contacts", {"channel": "mock"}, files={"file": ("new.csv", good)})
    assert 'data-created="2"' in done and "14 contacts in the database." in done


def test_the_inbox_shows_the_thread_the_knowledge_used_and_takes_a_reply(
    ctx: Context, console: Console
) -> None:
    for n, text in enumerate(("早鸟价是多少钱？", "转人工"), start=1):
        payload = InboundPayload.model_validate(
            {"message_id": f"in-{n}", "account": "a1", "from": "u000002", "text": text}
        )
        handle_inbound(
            ctx.engine, ctx.settings, record_inbound(ctx.engine, "mock", payload).message_id
        )
    inbox = console.get("/inbox")
    assert 'data-testid="inbox-item"' in inbox and 'data-contact="u000002"' in inbox
    page = console.get("/inbox/u000002")
    assert page.count('data-testid="message"') >= 3
    entry = re.search(r'<details class="knowledge".*?</details>', page, re.S)
    assert entry and "knowledge/" in entry.group(0) and "<pre" in entry.group(0)
    cid = re.search(r'id="reply-form-(\d+)"', page).group(1)  # type: ignore[union-attr]
    done = console.post(f"/inbox/u000002/{cid}", {"text": "您好，我来为您解答"})
    assert 'data-testid="flash-ok"' in done and "您好，我来为您解答" in done
    assert 'data-contact="u000002"' not in console.get("/inbox")  # handoff closed
    empty = console.post(f"/inbox/u000002/{cid}", {"text": "  "})
    assert 'data-testid="flash-error"' in empty and "the reply is empty" in empty


def test_pages_speak_chinese_by_accept_language(ctx: Context, console: Console) -> None:
    add_campaign(ctx, "c1", ["a1"])
    zh = {"Accept-Language": "zh-CN,zh;q=0.9"}
    for path, words in (("/", "进行中的活动"), ("/campaigns/c1", "发送计划"),
                        ("/accounts", "今日已发"), ("/contacts", "导入 CSV 文件"),
                        ("/inbox", "目前没有需要人工处理的对话"),
                        ("/campaigns/new", "新建活动")):  # fmt: skip
        page = console.http.get(path, headers=zh)
        assert page.status_code == 200 and words in page.text, path
