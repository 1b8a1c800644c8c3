"""Issue 12's acceptance in a real browser: Debian's chromium, driven by Playwright, against
real processes (`siyu api` with a token, a `siyu worker`, the mock platform), a real database
and Redis.

An operator signs in, uploads contacts, makes a campaign in the wizard, sees its preview and
plan, starts it and watches it complete on the platform; pauses, resumes and cancels another;
and answers a learner who asked for a person. Every step leaves a full-page screenshot in the
artefacts folder (`tests.support.browser`), and each check reads the page's text, not pixels.
The main flow reads English (Accept-Language en-US); the phone-width dashboard reads Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import IN_CI
from tests.support.browser import INSTALL_HINT, PHONE, new_page, screenshot
from tests.support.cluster import wait_for
from tests.support.console_cluster import (
    Cluster,
    flushed_redis,
    fresh_database,
    running_console,
)
from tests.support.mockplatform import duplicate_attempts
from worker.services.contacts import count_contacts

if not IN_CI:  # in CI a missing Playwright is an import error: a failure
    pytest.importorskip(
        "playwright.sync_api", reason=f"Playwright is not installed; {INSTALL_HINT}"
    )
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.slow
TOKEN = "console-browser-token-0123456789"
POLICIES = {"fast": "[account]\n", "slow": "[account]\nper_minute = 2\n"}
ACCOUNTS = {"fast1": "fast", "fast2": "fast", "slow1": "slow", "desk": "fast"}
VARIABLES = "course_name=Python 入门\ncourse_url=https://edu.example.com/py\n"
VARIABLES += "group_url=https://g.example.com/1"
PYTHON_LEARNERS = [f"p{i:02d}" for i in range(1, 13)]  # tag python: the first campaign
JAVA_LEARNERS = [f"j{i:02d}" for i in range(1, 21)]  # tag java: the slow one
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Upload:
    """What the contacts page showed for the bad file, then the good one."""

    bad_error: str
    bad_lines: list[str]
    total_after_bad: str
    report: dict[str, str | None]
    total_after_good: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The console and its processes on a fresh database, shared by the module's tests."""
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    with (
        fresh_database(request.param, tmp) as db_url,
        flushed_redis(redis_server_url) as redis_url,
        running_console(
            db_url, redis_url, tmp, token=TOKEN, policies=POLICIES, accounts=ACCOUNTS
        ) as cluster,
    ):
        yield cluster


def shot(cluster: Cluster, page: Page, step: str) -> None:
    """A full-page screenshot of this step, in the folder of this database's run."""
    screenshot(page, f"{cluster.db}/{step}")


def sign_in(page: Page, token: str) -> None:
    page.goto("/signin")
    page.fill("#token", token)
    page.click("#signin-button")


@pytest.fixture(scope="module")
def page(cluster: Cluster) -> Iterator[Page]:
    """A signed-in operator at 1280 px who reads English."""
    with new_page(cluster.browser, cluster.url) as page:
        sign_in(page, TOKEN)
        expect(page.locator("#signout-button")).to_be_visible()
        yield page


def upload(page: Page, path: Path) -> None:
    page.goto("/contacts")
    page.set_input_files("#csv-file", str(path))
    page.select_option("#channel", "mock")
    page.click("#upload-button")
    page.wait_for_load_state()


@pytest.fixture(scope="module")
def imported(cluster: Cluster, page: Page) -> Upload:
    """A CSV with one bad row (line 3: no external_id), then a good one, through the page."""
    header = "external_id,name,tags,city\n"
    bad = cluster.tmp / "learners-bad.csv"
    bad.write_text(header + "p01,学员1,python,上海\n,无名,python,上海\np03,学员3,python,北京\n")
    rows = [f"{x},学员{x},python,上海" for x in PYTHON_LEARNERS]
    rows += [f"{x},学员{x},java,北京" for x in JAVA_LEARNERS]
    good = cluster.tmp / "learners.csv"
    good.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")

    upload(page, bad)
    page.locator("#import-error").wait_for()
    shot(cluster, page, "02-contacts-bad-file")
    seen_bad = (
        page.inner_text("#import-error"),
        [
            r.get_attribute("data-line") or ""
            for r in page.locator("[data-testid=rejected-row]").all()
        ],
        page.inner_text("#contact-total"),
    )
    upload(page, good)
    report = page.locator("#import-report")
    report.wait_for()
    shot(cluster, page, "03-contacts-imported")
    attrs = {k: report.get_attribute(f"data-{k}") for k in ("created", "updated", "rejected")}
    return Upload(*seen_bad, attrs, page.inner_text("#contact-total"))


def create_in_wizard(
    cluster: Cluster,
    page: Page,
    name: str,
    where: str,
    accounts: list[str],
    members: int,
    end: str = "",
) -> None:
    """Fill the wizard (a typed segment, the invite template, `accounts`), check the live
    count and preview, and create the draft; leaves the page on the campaign's page."""
    page.click("#nav-new-campaign")
    page.fill("#campaign-name", name)
    page.check("#segment-mode-new")
    page.fill("#segment-where", "tag = = python")
    expect(page.locator("#member-count-error")).to_contain_text("column 9")
    page.fill("#segment-where", where)
    expect(page.locator("#member-count")).to_have_text(str(members))
    page.select_option("#template-select", "invite")
    page.fill("#variables", VARIABLES)
    for account in accounts:
        page.check(f"[data-testid=account-option][value={account}]")
    page.fill("#window-tz", "Asia/Shanghai")
    if end:
        page.fill("#window-end", end)
    samples = page.locator("#wizard-preview [data-testid=preview-sample]")
    expect(samples).to_have_count(3)
    expect(samples.first).to_contain_text("Python 入门 开课啦")
    shot(cluster, page, f"04-wizard-{name}")
    page.click("#create-button")
    expect(page.locator("#campaign-name")).to_have_text(name)
    expect(page.locator("[data-testid=flash-ok]")).to_contain_text("Draft created")


def status_of(page: Page) -> Any:
    return expect(page.locator("#campaign-status"))


def platform_accepted(platform: str, accounts: list[str]) -> int:
    stats = httpx.get(f"{platform}/v1/stats", timeout=30).json()
    return sum(int(stats.get(a, {}).get("accepted", 0)) for a in accounts)


def test_a_wrong_token_is_refused_and_the_right_one_signs_in(cluster: Cluster) -> None:
    with new_page(cluster.browser, cluster.url) as page:
        page.goto("/campaigns")
        expect(page).to_have_url(re.compile(r"/signin\?next=(%2F|/)campaigns$"))
        page.fill("#token", "not-the-token")
        page.click("#signin-button")
        expect(page.locator("#signin-error")).to_contain_text("That is not the token")
        shot(cluster, page, "01-signin-refused")
        page.fill("#token", TOKEN)
        page.click("#signin-button")
        expect(page).to_have_url(f"{cluster.url}/campaigns")
        expect(page.locator("h1")).to_have_text("Campaigns")
        [cookie] = [c for c in page.context.cookies() if c["name"] == "siyu_console"]
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax"), cookie
        shot(cluster, page, "01-signed-in")
        page.click("#signout-button")
        expect(page.locator("#signin-form")).to_be_visible()


def test_a_csv_with_a_bad_row_imports_nothing_and_names_the_line_then_a_good_one_imports(
    cluster: Cluster, imported: Upload
) -> None:
    assert "Nothing was imported" in imported.bad_error, imported
    assert "learners-bad.csv" in imported.bad_error and "siyu-upload-" not in imported.bad_error
    assert imported.bad_lines == ["3"], imported
    assert imported.total_after_bad.startswith("0 contacts"), imported
    learners = len(PYTHON_LEARNERS) + len(JAVA_LEARNERS)
    assert imported.report == {"created": str(learners), "updated": "0", "rejected": "0"}
    assert imported.total_after_good.startswith(f"{learners} contacts"), imported
    assert count_contacts(cluster.ctx.engine) == learners


def test_a_campaign_made_in_the_wizard_completes_and_shows_what_the_platform_accepted(
    cluster: Cluster, page: Page, imported: Upload
) -> None:
    create_in_wizard(cluster, page, "spring-python", "tag = python", ["fast1", "fast2"], 12)
    status_of(page).to_have_attribute("data-status", "draft")
    expect(page.locator("#plan-verdict")).to_have_attribute("data-fits", "yes")
    expect(page.locator("#plan-verdict")).to_contain_text("Fits: all 12 members can be sent")
    expect(page.locator("[data-testid=plan-account]")).to_have_count(2)
    expect(page.locator("#campaign-preview [data-testid=preview-sample]")).to_have_count(3)
    expect(page.locator("#def-window")).to_contain_text("when started → open-ended")
    shot(cluster, page, "05-campaign-draft-plan")

    page.click("#start-button")
    expect(page.locator("[data-testid=flash-ok]")).to_contain_text("spring-python is now")
    status_of(page).to_have_attribute("data-status", "completed", timeout=90_000)
    shot(cluster, page, "06-campaign-completed")
    status_of(page).to_have_text("completed")
    counts = {
        key: page.inner_text(f"[data-testid=count-{key}]")
        for key in ("sent", "pending", "failed", "skipped", "unknown")
    }
    accepted = platform_accepted(cluster.platform, ["fast1", "fast2"])
    assert counts == {"sent": str(accepted), "pending": "0", "failed": "0", "skipped": "0",
                      "unknown": "0"}  # fmt: skip
    assert accepted == 12 and duplicate_attempts(cluster.platform) == 0
    page.reload()  # the log is rendered with the page, not polled
    expect(page.locator("[data-testid=log-row][data-state=sent]")).to_have_count(12)


def test_a_running_campaign_pauses_resumes_and_cancels_from_its_page(
    cluster: Cluster, page: Page, imported: Upload
) -> None:
    # Paced to an end two hours away, at two a minute at most: running for the whole test.
    end = (datetime.now(SHANGHAI) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    create_in_wizard(cluster, page, "autumn-java", "tag = java", ["slow1"], 20, end)
    expect(page.locator("#def-window")).to_contain_text(end[:10])
    page.click("#start-button")
    status_of(page).to_have_attribute("data-status", "running")
    status_of(page).to_have_text("running")
    shot(cluster, page, "07-slow-campaign-running")

    page.click("#pause-button")
    status_of(page).to_have_attribute("data-status", "paused")
    status_of(page).to_have_text("paused")
    expect(page.locator("[data-testid=flash-ok]")).to_contain_text("autumn-java is now paused")
    expect(page.locator("#pause-button")).to_have_count(0)
    shot(cluster, page, "08-slow-campaign-paused")

    page.click("#resume-button")
    status_of(page).to_have_attribute("data-status", "running")
    expect(page.locator("[data-testid=flash-ok]")).to_contain_text("autumn-java is now running")
    shot(cluster, page, "09-slow-campaign-resumed")

    page.click("#nav-dashboard")
    live = page.locator("[data-testid=live-campaign][data-name=autumn-java]")
    expect(live).to_have_attribute("data-status", "running")
    chart = page.locator("[data-testid=rate-chart] polyline.series[data-account=slow1]")
    expect(chart).to_have_count(1, timeout=30_000)
    shot(cluster, page, "10-dashboard")
    phone_dashboard_in_chinese(cluster)

    page.goto("/campaigns/autumn-java")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#cancel-button")  # dismissed: nothing changes
    status_of(page).to_have_attribute("data-status", "running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-button")
    status_of(page).to_have_attribute("data-status", "cancelled")
    shot(cluster, page, "11-slow-campaign-cancelled")
    sent = int(page.inner_text("[data-testid=count-sent]"))
    assert sent == platform_accepted(cluster.platform, ["slow1"]) and sent < 20


def phone_dashboard_in_chinese(cluster: Cluster) -> None:
    """The dashboard at 375 px for a browser that asks for Chinese (the default language)."""
    with new_page(cluster.browser, cluster.url, locale="zh-CN", viewport=PHONE) as phone:
        sign_in(phone, TOKEN)
        expect(phone.locator("h1")).to_have_text("总览")
        expect(phone.locator("label.nav-button")).to_contain_text("菜单")
        live = phone.locator("[data-testid=live-campaign][data-name=autumn-java]")
        expect(live).to_contain_text("发送中")
        width = phone.evaluate("document.documentElement.scrollWidth")
        shot(cluster, phone, "10-dashboard-phone-zh")
        assert width <= PHONE["width"], f"the page scrolls sideways on a phone: {width}px"
        expect(phone.locator("#lang-en")).to_be_hidden()  # behind the menu button
        phone.click("label.nav-button")
        phone.click("#lang-en")  # the language switch wins over Accept-Language
        expect(phone.locator("h1")).to_have_text("Dashboard")


def test_a_learner_asking_for_a_person_is_answered_from_the_inbox(
    cluster: Cluster, page: Page, imported: Upload
) -> None:
    asked = {"account": "desk", "from": "p05", "text": "我想转人工，问一下退款"}
    said = httpx.post(f"{cluster.platform}/v1/simulate/inbound", json=asked, timeout=30).json()
    assert (said["delivered"], said["status"]) == (True, 200), said

    def waiting() -> bool:
        page.goto("/inbox")
        return page.locator("[data-testid=inbox-item][data-contact=p05]").count() == 1

    assert wait_for(waiting, 60, 1.0), cluster.workers.logs()
    item = page.locator("[data-testid=inbox-item][data-contact=p05]")
    expect(item).to_contain_text("转人工")
    conversation = item.get_attribute("data-conversation")
    shot(cluster, page, "12-inbox")

    item.locator("a.who").click()
    thread = page.locator(f"#conversation-{conversation}")
    expect(thread.locator("[data-testid=handoff-reason]")).to_contain_text("handoff")
    expect(thread.locator("[data-testid=message][data-author=learner]")).to_contain_text("转人工")
    expect(thread.locator("[data-testid=decision]")).to_have_attribute("data-action", "handoff")
    shot(cluster, page, "13-conversation")

    answer = "您好，我是助教小王，退款的事我来帮您办。"
    page.fill(f"#reply-text-{conversation}", answer)
    page.click(f"#reply-button-{conversation}")
    expect(page.locator("[data-testid=flash-ok]")).to_contain_text("p05")
    expect(thread.locator("[data-testid=message][data-author=human]")).to_contain_text(answer)
    shot(cluster, page, "14-reply-queued")

    def arrived() -> list[dict[str, Any]]:
        got = httpx.get(f"{cluster.platform}/v1/messages", params={"to": "p05"}, timeout=30)
        return [m for m in got.json() if m["text"] == answer]

    assert wait_for(lambda: bool(arrived()), 60), cluster.workers.logs()
    assert [m["account"] for m in arrived()] == ["desk"]
    page.click("#nav-inbox")
    expect(page.locator("#inbox-empty")).to_be_visible()
    shot(cluster, page, "15-inbox-empty")


def test_an_automatic_answer_shows_the_knowledge_entry_it_came_from(
    cluster: Cluster, page: Page, imported: Upload
) -> None:
    asked = {"account": "desk", "from": "p06", "text": "早鸟价多少钱？"}
    said = httpx.post(f"{cluster.platform}/v1/simulate/inbound", json=asked, timeout=30).json()
    assert (said["delivered"], said["status"]) == (True, 200), said

    def answered() -> bool:
        got = httpx.get(f"{cluster.platform}/v1/messages", params={"to": "p06"}, timeout=30)
        return any("699" in m["text"] for m in got.json())

    assert wait_for(answered, 60), cluster.workers.logs()
    page.goto("/inbox/p06")
    decision = page.locator("[data-testid=decision]")
    expect(decision).to_have_attribute("data-action", "reply")
    entry = decision.locator("[data-testid=knowledge-entry]").first
    expect(entry).to_have_attribute("data-source", re.compile(r"\.md:\d+$"))
    expect(entry).to_contain_text("699")
    expect(page.locator("[data-testid=message][data-author=assistant]")).to_contain_text("699")
    shot(cluster, page, "16-automatic-answer-knowledge")
