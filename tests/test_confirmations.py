"""Sends a platform holds until a person confirms them: `sent` as `awaiting_confirmation`,
then settled from the platform's per-recipient answers (`worker.dispatch.confirmations`), and
given up on after three days: withdrawn at the local WeCom (`tests/support/wecom_api.py`)
first, so a task that fails as `not_confirmed` can no longer reach the customer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.fakes import HeldChannel, register_fakes
from tests.support.rows import drain
from tests.support.wecom_api import Errcode, WecomApi, running_wecom
from tests.support.world import (
    add_accounts,
    add_campaign,
    add_contacts,
    make_context,
    start,
    write_policies,
)
from worker.campaigns.materialise import materialise
from worker.campaigns.tick import tick
from worker.channels.base import SendResult
from worker.channels.errors import RecipientError, RecipientUnreachable, Transient
from worker.dispatch.confirmations import sync
from worker.runtime import Context
from worker.store import tables
from worker.store.models import utcnow

D = tables.deliveries.c
CT = tables.contacts.c


@pytest.fixture
def ctx(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Context]:
    HeldChannel.reset()
    register_fakes()
    ctx = make_context(db_url, redis_url, tmp_path, confirmation_sync_s=3600)
    accounts = add_accounts(ctx.engine, ["m1"], channel="held")
    add_contacts(ctx.engine, 5, channel="held")
    add_campaign(ctx, "c1", ["m1"])
    run = start(ctx, "c1")
    assert run.id is not None
    materialise(ctx, run.id)
    drain(ctx, list(accounts.values()))
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def wecom(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Context, WecomApi]]:
    """Three customer tasks held at the local WeCom, one per contact, by account m1."""
    with running_wecom(customers={"u000001", "u000002", "u000003"}) as api:
        limits = write_policies(tmp_path / "rate_limits", {"wecom": "[account]\n"})
        ctx = make_context(db_url, redis_url, tmp_path, rate_limits_dir=limits)
        accounts = add_accounts(
            ctx.engine, ["m1"], channel="wecom", corp_id=api.corp_id, secret=api.secret,
            agent_id=str(api.agent_id), mode="customer", sender=api.sender,
            api_base=api.base, timeout_s="2",
        )  # fmt: skip
        add_contacts(ctx.engine, 3, channel="wecom")
        add_campaign(ctx, "c1", ["m1"])
        run = start(ctx, "c1")
        assert run.id is not None
        materialise(ctx, run.id)
        drain(ctx, list(accounts.values()))
        assert len(api.tasks) == 3
        yield ctx, api
        ctx.engine.dispose()


def rows(ctx: Context) -> dict[str, tuple[str, str | None, str | None]]:
    """external id -> (state, reason, provider message id)."""
    stmt = select(CT.external_id, D.state, D.reason, D.provider_message_id).join(
        tables.contacts, CT.id == D.contact_id
    )
    with ctx.engine.connect() as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(stmt)}


def tasks(ctx: Context) -> dict[str, str]:
    """external id -> the task its send became."""
    return {to: task for to, (_, _, task) in rows(ctx).items() if task}


def answer(ctx: Context, **by_contact: object) -> None:
    for to, result in by_contact.items():
        HeldChannel.answers.setdefault(tasks(ctx)[to], {})[to] = result  # type: ignore[assignment]


def test_a_held_send_is_sent_awaiting_confirmation_and_never_sent_again(ctx: Context) -> None:
    assert len(HeldChannel.attempts) == 5
    assert {state for state, _, _ in rows(ctx).values()} == {"sent"}
    assert {reason for _, reason, _ in rows(ctx).values()} == {"awaiting_confirmation"}
    assert len(set(tasks(ctx).values())) == 5


def test_each_recipient_is_settled_from_the_platforms_answer(ctx: Context) -> None:
    answer(
        ctx,
        u000001=SendResult("t"),
        u000002=RecipientUnreachable("not a customer of this member"),
        u000003=RecipientError("already received another mass message today"),
        u000004=None,  # the member has not sent it yet; u000005: the platform says nothing
    )
    report = sync(ctx.engine)
    assert (report.delivered, report.refused, report.waiting) == (1, 2, 2)
    now = rows(ctx)
    assert now["u000001"][:2] == ("sent", None)
    assert now["u000002"][:2] == ("failed", "recipient_unreachable")
    assert now["u000003"][:2] == ("failed", "recipient_error")
    assert now["u000004"][:2] == now["u000005"][:2] == ("sent", "awaiting_confirmation")
    with ctx.engine.connect() as conn:
        error = conn.execute(
            select(D.last_error).join(tables.contacts, CT.id == D.contact_id)
            .where(CT.external_id == "u000002")
        ).scalar_one()  # fmt: skip
    assert error == "RecipientUnreachable: not a customer of this member"
    again = sync(ctx.engine)
    assert (again.delivered, again.refused, again.waiting) == (0, 0, 2)


def test_a_tick_landing_between_the_answer_and_the_update_settles_each_row_once(
    ctx: Context,
) -> None:
    answer(ctx, u000001=SendResult("t"), u000002=RecipientUnreachable("gone"))
    inner: list[object] = []
    # Another tick asks and records while this one holds the platform's answer.
    HeldChannel.on_ask.append(lambda _task: inner.append(sync(ctx.engine)))
    outer = sync(ctx.engine)
    assert len(inner) == 1
    assert (inner[0].delivered, inner[0].refused) == (1, 1)  # type: ignore[attr-defined]
    assert (outer.delivered, outer.refused) == (0, 0), "rows already settled are not counted"
    assert rows(ctx)["u000002"][:2] == ("failed", "recipient_unreachable")


def age(ctx: Context, *contacts: str) -> None:
    """Make these contacts' sends older than the three days siyu waits."""
    with ctx.engine.begin() as conn:
        conn.execute(
            update(tables.deliveries)
            .where(D.contact_id.in_(select(CT.id).where(CT.external_id.in_(contacts))))
            .values(sent_at=utcnow() - timedelta(days=3, minutes=1))
        )


def last_error(ctx: Context, contact: str) -> str | None:
    with ctx.engine.connect() as conn:
        error: str | None = conn.execute(
            select(D.last_error).join(tables.contacts, CT.id == D.contact_id)
            .where(CT.external_id == contact)
        ).scalar_one()  # fmt: skip
    return error


def test_a_send_nobody_confirms_within_three_days_fails_as_not_confirmed(ctx: Context) -> None:
    age(ctx, "u000005")
    assert sync(ctx.engine).expired == 1
    assert rows(ctx)["u000005"][:2] == ("failed", "not_confirmed")
    assert rows(ctx)["u000004"][:2] == ("sent", "awaiting_confirmation")
    error = last_error(ctx, "u000005")  # this platform cannot withdraw: the record says so
    assert error == (
        "not confirmed within 3 days; the member may still send it: channel 'held' cannot "
        "withdraw a held send"
    )


def test_a_task_confirmed_just_before_the_three_days_end_is_delivered(
    wecom: tuple[Context, WecomApi],
) -> None:
    ctx, api = wecom
    age(ctx, "u000001")
    api.confirm(tasks(ctx)["u000001"])
    report = sync(ctx.engine)
    assert (report.delivered, report.expired) == (1, 0)
    assert rows(ctx)["u000001"][:2] == ("sent", None)
    assert rows(ctx)["u000002"][:2] == ("sent", "awaiting_confirmation")


def test_an_unconfirmed_task_is_withdrawn_then_fails_as_not_confirmed(
    wecom: tuple[Context, WecomApi],
) -> None:
    ctx, api = wecom
    age(ctx, "u000001")
    report = sync(ctx.engine)
    assert (report.delivered, report.expired, report.waiting) == (0, 1, 2)
    task = tasks(ctx)["u000001"]
    calls = api.calls("externalcontact/cancel_groupmsg_send")
    assert [c.body for c in calls] == [{"msgid": task}] and api.tasks[task].withdrawn
    asked = api.calls("externalcontact/get_groupmsg_send_result")
    assert task in [a.body["msgid"] for a in asked], "asked one last time after withdrawing"
    assert rows(ctx)["u000001"][:2] == ("failed", "not_confirmed")
    assert last_error(ctx, "u000001") == "not confirmed within 3 days; the task was withdrawn"
    api.confirm(task)  # the member finds the notice too late: WeCom delivers nothing
    assert api.tasks[task].status == {"u000001": 0}
    sync(ctx.engine)
    assert api.calls("externalcontact/cancel_groupmsg_send") == calls, "given up on once"


def test_a_task_wecom_will_not_withdraw_fails_saying_the_member_may_still_send_it(
    wecom: tuple[Context, WecomApi], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, api = wecom
    age(ctx, "u000001")
    api.then("externalcontact/cancel_groupmsg_send", Errcode(48002))
    with caplog.at_level(logging.WARNING, "worker.dispatch.confirmations"):
        assert sync(ctx.engine).expired == 1
    assert rows(ctx)["u000001"][:2] == ("failed", "not_confirmed")
    error = last_error(ctx, "u000001")
    assert error is not None and error.startswith(
        "not confirmed within 3 days; the member may still send it: the task could not be "
        "withdrawn (SenderAtRisk: "
    )
    assert "errcode 48002" in error or len(error) == 300, "the errcode, unless cut at 300"
    assert "may still send it" in caplog.text and "errcode 48002" in caplog.text
    assert not api.tasks[tasks(ctx)["u000001"]].withdrawn


def test_an_account_that_no_longer_builds_still_gives_up_saying_so(
    wecom: tuple[Context, WecomApi],
) -> None:
    ctx, api = wecom
    age(ctx, "u000001")
    with ctx.engine.begin() as conn:  # the sender removed from the config by hand
        conn.execute(update(tables.accounts).values(config={"corp_id": api.corp_id}))
    assert sync(ctx.engine).expired == 1
    assert rows(ctx)["u000001"][:2] == ("failed", "not_confirmed")
    assert rows(ctx)["u000002"][:2] == ("sent", "awaiting_confirmation")
    error = last_error(ctx, "u000001")
    assert error is not None and error.startswith(
        "not confirmed within 3 days; the member may still send it: the account's config is "
        "unusable (account 'm1': "
    )
    assert api.calls("externalcontact/cancel_groupmsg_send") == []


def test_a_platform_error_leaves_the_rows_for_next_time(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(_task: str) -> None:
        raise Transient("busy")

    HeldChannel.on_ask.append(fail)
    with caplog.at_level(logging.WARNING, "worker.dispatch.confirmations"):
        report = sync(ctx.engine)
    assert (report.delivered, report.refused) == (0, 0)
    assert "not followed up yet: busy" in caplog.text
    assert {reason for _, reason, _ in rows(ctx).values()} == {"awaiting_confirmation"}


def test_the_tick_follows_up_once_per_interval(ctx: Context) -> None:
    answer(ctx, u000001=SendResult("t"))
    tick(ctx, force=True)
    assert rows(ctx)["u000001"][:2] == ("sent", None)
    answer(ctx, u000002=SendResult("t"))
    tick(ctx, force=True)  # within the hour the fixture set: not asked again
    assert rows(ctx)["u000002"][:2] == ("sent", "awaiting_confirmation")
