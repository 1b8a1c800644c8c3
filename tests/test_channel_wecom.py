"""The `wecom` channel against a faithful local WeCom (`tests/support/wecom_api.py`): real HTTP
on loopback, every documented errcode mapped, the access token cached and renewed once however
many threads find it expired, customer-mode tasks followed through every page of results, and
neither the secret nor a token shown anywhere. The errcode tables run against every call:
message/send, add_msg_template, get_groupmsg_send_result and cancel_groupmsg_send."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.support.wecom_api import (
    ACCEPT_THEN_DROP,
    DROP,
    EXPIRE,
    PASS,
    Answer,
    Errcode,
    HttpStatus,
    Late,
    Step,
    WecomApi,
    running_wecom,
)
from tests.support.world import add_accounts, add_contacts, make_context
from worker.campaigns.lifecycle import CampaignSpec, create_campaign
from worker.channels.base import OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RateLimited,
    RecipientError,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.registry import build_channel
from worker.channels.wecom import MAX_RESULT_PAGES, SharedToken, WecomChannel
from worker.dispatch.compose import Composer
from worker.errors import UserError
from worker.store.models import Segment

SECRET = "hVm3Q1fXo0c-3sSa9Uq4y1Zb7nJ2kT8eR5wP6dL0gAq"
USERS = {"zhangsan", "LiSi", "wangwu"}
CUSTOMERS = {f"wmAAAA{i:04d}" for i in range(1, 8)}
TEXT = "王同学，Python 入门开课啦"
BASE = {"corp_id": "ww1", "secret": SECRET, "agent_id": "1000002"}


@pytest.fixture
def wecom() -> Iterator[WecomApi]:
    with running_wecom(secret=SECRET, users=USERS, customers=CUSTOMERS, sender="zhangsan") as api:
        yield api


def channel(api: WecomApi, name: str = "wc-1", **config: str) -> WecomChannel:
    settings = {"corp_id": api.corp_id, "secret": SECRET, "agent_id": str(api.agent_id),
                "api_base": api.base, "timeout_s": "2", **config}  # fmt: skip
    made = build_channel("wecom", name, settings)
    assert isinstance(made, WecomChannel)
    return made


def customer_channel(api: WecomApi, name: str = "wc-c") -> WecomChannel:
    return channel(api, name, mode="customer", sender=api.sender)


def message(to: str, text: str = TEXT, key: str = "siyu-i1-7-42") -> OutboundMessage:
    return OutboundMessage(to, text, key, "spring")


def test_an_application_message_goes_out_in_wecoms_format(wecom: WecomApi) -> None:
    result = channel(wecom).send(message("zhangsan"))
    [fetch, sent] = wecom.attempts
    assert fetch.api == "gettoken" and sent.api == "message/send"
    assert sent.token == wecom.issued()[0]
    assert sent.body == {
        "touser": "zhangsan", "msgtype": "text", "agentid": 1000002, "text": {"content": TEXT},
        "enable_duplicate_check": 1, "duplicate_check_interval": 1800,
    }  # fmt: skip
    assert result == SendResult(wecom.messages[0]["msgid"])
    assert wecom.duplicate_attempts == 0


@pytest.mark.parametrize(
    ("step", "raised"),
    [
        (Errcode(-1), Transient),
        (Errcode(45009), RateLimited),
        (Errcode(45033), RateLimited),
        (Errcode(81013), RecipientUnreachable),
        (Errcode(84061), RecipientUnreachable),
        (Errcode(40096), RecipientUnreachable),
        (Errcode(40001), SenderAtRisk),
        (Errcode(40013), SenderAtRisk),
        (Errcode(40056), SenderAtRisk),
        (Errcode(48002), SenderAtRisk),
        (Errcode(60011), SenderAtRisk),
        (Errcode(60020), SenderAtRisk),
        (Errcode(301002), SenderAtRisk),
        (Errcode(40058), ChannelError),
        (Errcode(99999), ChannelError),
        (HttpStatus(502), DeliveryUnknown),
        (HttpStatus(500), DeliveryUnknown),
        (HttpStatus(404), SenderAtRisk),
        (DROP, DeliveryUnknown),
        (ACCEPT_THEN_DROP, DeliveryUnknown),
        (Late(5), DeliveryUnknown),
    ],
    ids=str,
)
def test_every_errcode_and_http_failure_maps_to_its_outcome(
    wecom: WecomApi, step: Step, raised: type[ChannelError]
) -> None:
    wecom.then("message/send", step)
    with pytest.raises(ChannelError) as caught:
        channel(wecom, timeout_s="0.5").send(message("zhangsan"))
    assert type(caught.value) is raised, caught.value
    if isinstance(caught.value, RateLimited):
        assert isinstance(step, Errcode)
        assert caught.value.retry_after_s == {45009: 60.0, 45033: 5.0}[step.code]
    text = str(caught.value)
    if isinstance(step, Errcode):
        assert f"errcode {step.code}" in text and "more info at" in text, "errmsg is named"
    assert SECRET not in text and "zhangsan" not in text and "王同学" not in text
    assert all(token not in text for token in wecom.issued())


def test_an_errmsg_that_echoes_the_credentials_is_masked(wecom: WecomApi) -> None:
    sender = channel(wecom)
    sender.send(message("zhangsan", "一"))
    token = wecom.issued()[0]
    # A proxy in front of WeCom (api_base) might echo what it got.
    wecom.then("message/send", Errcode(40058, f"bad {SECRET} in ?access_token={token}&x=1"))
    with pytest.raises(ChannelError) as caught:
        sender.send(message("zhangsan", "二"))
    assert str(caught.value).endswith("errcode 40058 (bad *** in ?access_token=***&x=1)")


@pytest.mark.parametrize(
    ("step", "raised"),
    [
        (Errcode(-1), Transient),
        (Errcode(45009), RateLimited),
        (Errcode(60020), SenderAtRisk),
        (Errcode(12345), SenderAtRisk),
        (HttpStatus(503), Transient),
        (DROP, Transient),
    ],
    ids=str,
)
def test_a_failed_gettoken_sends_nothing_and_maps_to_its_outcome(
    wecom: WecomApi, step: Step, raised: type[ChannelError]
) -> None:
    wecom.then("gettoken", step)
    with pytest.raises(ChannelError) as caught:
        channel(wecom).send(message("zhangsan"))
    assert type(caught.value) is raised
    assert wecom.calls("message/send") == []


@pytest.mark.parametrize(
    ("config", "says"),
    [({"secret": "wrong-secret"}, "corp_id or secret"), ({"corp_id": "ww-other"}, "corp_id")],
)
def test_a_wrong_corp_id_or_secret_pauses_the_account_without_echoing_it(
    wecom: WecomApi, config: dict[str, str], says: str
) -> None:
    with pytest.raises(SenderAtRisk) as caught:
        channel(wecom, **config).send(message("zhangsan"))
    assert says in str(caught.value) and "wrong-secret" not in str(caught.value)
    assert [a.errcode for a in wecom.attempts] == [40001 if "secret" in config else 40013]


def test_a_wecom_that_is_not_listening_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = build_channel("wecom", "wc-1", {**BASE, "api_base": f"http://127.0.0.1:{port}"})
    with pytest.raises(Transient):
        closed.send(message("zhangsan"))


def test_one_token_serves_many_sends_and_every_account_of_the_app(wecom: WecomApi) -> None:
    first, second = channel(wecom, "wc-1"), channel(wecom, "wc-2")
    for i in range(5):
        first.send(message("zhangsan", f"第{i}条"))
        second.send(message("wangwu", f"第{i}条"))
    assert wecom.token_fetches == 1
    assert len(wecom.messages) == 10


@pytest.mark.parametrize(
    ("expires_in_s", "fresh_s"), [(7200, 6900), (600, 300), (300, 150), (2, 1)], ids=str
)
def test_a_token_is_renewed_five_minutes_early_but_kept_for_half_its_life(
    expires_in_s: int, fresh_s: float
) -> None:
    now = [1000.0]
    token = SharedToken(clock=lambda: now[0])
    fetched: list[str] = []

    def fetch() -> tuple[str, float]:
        fetched.append(f"t{len(fetched) + 1}")
        return fetched[-1], float(expires_in_s)

    assert token.current(fetch) == "t1"
    now[0] += fresh_s - 0.001
    assert token.current(fetch) == "t1", "still fresh"
    now[0] += 0.001
    assert token.current(fetch) == "t2", "renewed once fresh_s is over"


def test_a_token_wecom_gives_with_little_life_left_serves_more_than_one_call(
    wecom: WecomApi,
) -> None:
    wecom.expires_in = 300  # no more than the renewal margin: kept for half of it
    sender = channel(wecom)
    sender.send(message("zhangsan", "一"))
    sender.send(message("zhangsan", "二"))
    assert wecom.token_fetches == 1
    assert [a.errcode for a in wecom.calls("message/send")] == [0, 0]


@pytest.mark.parametrize("refusal", [EXPIRE, Errcode(40014), Errcode(41001)], ids=str)
def test_a_refused_token_is_renewed_once_and_the_send_tried_again(
    wecom: WecomApi, refusal: Step
) -> None:
    sender = channel(wecom)
    sender.send(message("zhangsan", "一"))
    wecom.then("message/send", refusal)
    assert sender.send(message("zhangsan", "二")) == SendResult(wecom.messages[1]["msgid"])
    assert wecom.token_fetches == 2
    tries = wecom.calls("message/send")[1:]
    assert [a.errcode for a in tries] == [42001 if refusal == EXPIRE else refusal.code, 0]  # type: ignore[union-attr]
    assert tries[1].token == wecom.issued()[1] != tries[0].token
    assert wecom.duplicate_attempts == 0


def test_a_token_refused_again_after_renewal_pauses_the_account(wecom: WecomApi) -> None:
    wecom.then("message/send", Errcode(42001), Errcode(42001))
    with pytest.raises(SenderAtRisk, match="freshly renewed token"):
        channel(wecom).send(message("zhangsan"))
    assert wecom.token_fetches == 2 and len(wecom.calls("message/send")) == 2


def test_eight_threads_finding_the_token_expired_at_once_renew_it_once(wecom: WecomApi) -> None:
    senders = [channel(wecom, f"wc-{i}") for i in range(8)]
    senders[0].send(message("zhangsan", "预热"))
    wecom.expire_tokens()
    wecom.hold_refused(8)  # all eight get their 42001 together, holding the same old token
    results: list[object] = [None] * 8

    def send(i: int) -> None:
        results[i] = senders[i].send(message("wangwu", f"第{i}条"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(isinstance(r, SendResult) for r in results), results
    assert wecom.token_fetches == 2, "one fetch at first, one renewal for all eight"
    renewed = wecom.issued()[1]
    assert [a.token for a in wecom.calls("message/send") if a.errcode == 0][1:] == [renewed] * 8


@pytest.mark.parametrize("legacy", [False, True], ids=["81013", "invaliduser"])
def test_an_unknown_member_is_unreachable_whichever_way_wecom_says_so(
    wecom: WecomApi, legacy: bool
) -> None:
    wecom.legacy_invaliduser = legacy
    with pytest.raises(RecipientUnreachable) as caught:
        channel(wecom).send(message("ZhaoLiu"))  # WeCom lists it lower-cased: zhaoliu
    assert wecom.calls("message/send")[0].errcode == (0 if legacy else 81013)
    assert "ZhaoLiu" not in str(caught.value) and wecom.messages == []


def test_a_text_over_2048_bytes_fails_naming_the_limit_before_any_request(
    wecom: WecomApi,
) -> None:
    long_text = "课" * 683  # 2,049 bytes
    with pytest.raises(ChannelError, match=r"2,049 UTF-8 bytes; WeCom takes at most 2,048"):
        channel(wecom).send(message("zhangsan", long_text))
    assert wecom.attempts == []
    assert len(("课" * WecomChannel.max_text_len).encode()) <= 2048
    assert channel(wecom).send(message("zhangsan", "课" * WecomChannel.max_text_len))


def test_a_customer_send_is_a_task_that_waits_for_the_member(wecom: WecomApi) -> None:
    sender = customer_channel(wecom)
    assert sender.awaits_confirmation and not channel(wecom).awaits_confirmation
    result = sender.send(message("wmAAAA0001"))
    [task] = wecom.calls("externalcontact/add_msg_template")
    assert task.body == {"chat_type": "single", "external_userid": ["wmAAAA0001"],
                         "sender": "zhangsan", "text": {"content": TEXT}}  # fmt: skip
    assert result == SendResult(next(iter(wecom.tasks)), confirmed=False)
    assert sender.confirmations(result.message_id) == {"wmAAAA0001": None}


def test_confirmations_map_every_status_across_pages(wecom: WecomApi) -> None:
    wecom.page_size = 2
    msgid = wecom.add_task(sorted(CUSTOMERS))
    wecom.confirm(msgid, {"wmAAAA0002": 2, "wmAAAA0003": 3, "wmAAAA0004": 0, "wmAAAA0005": 9})
    found = customer_channel(wecom).confirmations(msgid)
    assert set(found) == CUSTOMERS
    assert found["wmAAAA0001"] == found["wmAAAA0007"] == SendResult(msgid)
    assert type(found["wmAAAA0002"]) is RecipientUnreachable
    assert type(found["wmAAAA0003"]) is RecipientError
    assert "already received another mass message" in str(found["wmAAAA0003"])
    assert found["wmAAAA0004"] is None
    assert type(found["wmAAAA0005"]) is ChannelError and "status 9" in str(found["wmAAAA0005"])
    queries = wecom.calls("externalcontact/get_groupmsg_send_result")
    assert [q.body["cursor"] for q in queries] == ["", "2", "4", "6"]
    assert {q.body["userid"] for q in queries} == {"zhangsan"}
    assert {q.body["limit"] for q in queries} == {1000}


def test_results_that_repeat_a_cursor_are_transient_not_an_endless_loop(
    wecom: WecomApi,
) -> None:
    page = {"errcode": 0, "errmsg": "ok", "next_cursor": "c1", "send_list": []}
    wecom.then("externalcontact/get_groupmsg_send_result", Answer(page), Answer(page))
    with pytest.raises(Transient, match="repeated an earlier next_cursor"):
        customer_channel(wecom).confirmations("msgGCA000001")
    assert len(wecom.calls("externalcontact/get_groupmsg_send_result")) == 2


def test_results_of_more_pages_than_a_task_fills_are_transient(wecom: WecomApi) -> None:
    wecom.page_size = 1  # WeCom ignoring `limit`: one customer a page, each cursor new
    msgid = wecom.add_task([f"wmBBBB{i:04d}" for i in range(MAX_RESULT_PAGES + 1)])
    with pytest.raises(Transient, match=f"more than {MAX_RESULT_PAGES} pages"):
        customer_channel(wecom).confirmations(msgid)
    assert len(wecom.calls("externalcontact/get_groupmsg_send_result")) == MAX_RESULT_PAGES
    wecom.page_size = 1000
    assert len(customer_channel(wecom).confirmations(msgid)) == MAX_RESULT_PAGES + 1


NO_MSGID = Answer({"errcode": 0, "errmsg": "ok", "fail_list": []})
FAIL_LIST = Answer({"errcode": 0, "errmsg": "ok", "fail_list": ["wmAAAA0001"], "msgid": "m1"})


@pytest.mark.parametrize(
    ("step", "raised"),
    [
        (Errcode(84061), RecipientUnreachable),
        (Errcode(40096), RecipientUnreachable),
        (FAIL_LIST, RecipientUnreachable),
        (Errcode(48002), SenderAtRisk),
        (Errcode(-1), Transient),
        (Errcode(45009), RateLimited),
        (Errcode(45033), RateLimited),
        (Errcode(99999), ChannelError),
        (NO_MSGID, DeliveryUnknown),
        (HttpStatus(502), DeliveryUnknown),
        (ACCEPT_THEN_DROP, DeliveryUnknown),
    ],
    ids=str,
)
def test_every_customer_task_errcode_maps_to_its_outcome(
    wecom: WecomApi, step: Step, raised: type[ChannelError]
) -> None:
    wecom.then("externalcontact/add_msg_template", step)
    with pytest.raises(ChannelError) as caught:
        customer_channel(wecom).send(message("wmAAAA0001"))
    assert type(caught.value) is raised, caught.value
    if isinstance(caught.value, RateLimited):
        assert isinstance(step, Errcode)
        assert caught.value.retry_after_s == {45009: 60.0, 45033: 5.0}[step.code]
    text = str(caught.value)
    if isinstance(step, Errcode):
        assert f"errcode {step.code}" in text
    if step == NO_MSGID:
        assert "without a msgid" in text and "cannot follow it up" in text
    assert SECRET not in text and "wmAAAA0001" not in text and "王同学" not in text
    assert len(wecom.calls("externalcontact/add_msg_template")) == 1, "never tried twice"


@pytest.mark.parametrize(
    ("step", "raised"),
    [
        (Errcode(-1), Transient),
        (Errcode(45009), RateLimited),
        (Errcode(45033), RateLimited),
        (Errcode(48002), SenderAtRisk),
        (HttpStatus(502), Transient),
        (DROP, Transient),
    ],
    ids=str,
)
@pytest.mark.parametrize("api", ["get_groupmsg_send_result", "cancel_groupmsg_send"])
def test_every_errcode_of_a_results_query_or_a_withdrawal_propagates(
    wecom: WecomApi, api: str, step: Step, raised: type[ChannelError]
) -> None:
    sender = customer_channel(wecom)
    msgid = sender.send(message("wmAAAA0001")).message_id
    wecom.then(f"externalcontact/{api}", step)
    with pytest.raises(ChannelError) as caught:
        sender.confirmations(msgid) if api.startswith("get") else sender.withdraw(msgid)
    assert type(caught.value) is raised, caught.value
    assert api in str(caught.value) or "WeCom" in str(caught.value)
    assert len(wecom.calls(f"externalcontact/{api}")) == 1


@pytest.mark.parametrize("refusal", [EXPIRE, Errcode(40014), Errcode(41001)], ids=str)
@pytest.mark.parametrize("api", ["add_msg_template", "get_groupmsg_send_result",
                                 "cancel_groupmsg_send"])  # fmt: skip
def test_a_refused_token_is_renewed_once_for_every_customer_call(
    wecom: WecomApi, api: str, refusal: Step
) -> None:
    sender = customer_channel(wecom)
    msgid = sender.send(message("wmAAAA0001")).message_id
    wecom.then(f"externalcontact/{api}", refusal)
    if api == "add_msg_template":
        assert sender.send(message("wmAAAA0002")).message_id == list(wecom.tasks)[1]
    elif api == "get_groupmsg_send_result":
        assert sender.confirmations(msgid) == {"wmAAAA0001": None}
    else:
        sender.withdraw(msgid)
        assert wecom.tasks[msgid].withdrawn
    tries = wecom.calls(f"externalcontact/{api}")[-2:]
    assert [a.errcode for a in tries] == [42001 if refusal == EXPIRE else refusal.code, 0]  # type: ignore[union-attr]
    assert wecom.token_fetches == 2 and tries[1].token == wecom.issued()[1]


def test_a_withdrawn_task_can_no_longer_be_sent_by_the_member(wecom: WecomApi) -> None:
    sender = customer_channel(wecom)
    msgid = sender.send(message("wmAAAA0001")).message_id
    sender.withdraw(msgid)
    [cancel] = wecom.calls("externalcontact/cancel_groupmsg_send")
    assert cancel.body == {"msgid": msgid} and cancel.errcode == 0
    wecom.confirm(msgid)  # too late: the task is gone from the member's client
    assert sender.confirmations(msgid) == {"wmAAAA0001": None}


def test_an_application_account_has_nothing_to_withdraw(wecom: WecomApi) -> None:
    with pytest.raises(NotImplementedError):
        channel(wecom).withdraw("msg1")
    assert wecom.attempts == []


def test_a_customer_text_may_be_4000_bytes(wecom: WecomApi) -> None:
    sender = customer_channel(wecom)
    assert sender.send(message("wmAAAA0001", "课" * 1333))  # 3,999 bytes
    with pytest.raises(ChannelError, match="at most 4,000 in add_msg_template"):
        sender.send(message("wmAAAA0002", "课" * 1334))


def test_an_application_account_has_no_confirmations(wecom: WecomApi) -> None:
    with pytest.raises(NotImplementedError):
        channel(wecom).confirmations("msg1")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"secret": SECRET, "agent_id": "1"}, "needs --config corp_id=..."),
        ({"corp_id": "ww1", "agent_id": "1"}, "needs --config secret=..."),
        ({"corp_id": "ww1", "secret": SECRET}, "needs --config agent_id=..."),
        ({**BASE, "agent_id": "abc"}, "agent_id must be the app's AgentId, a positive integer"),
        ({**BASE, "agent_id": "0"}, "agent_id must be"),
        ({**BASE, "agent_id": "-3"}, "agent_id must be"),
        ({**BASE, "corp_id": " "}, "corp_id must be a non-empty string"),
        ({**BASE, "secret": ""}, "secret must be a non-empty string"),
        ({**BASE, "mode": "group"}, "mode must be one of app, customer, got 'group'"),
        ({**BASE, "mode": "customer"}, "mode=customer needs --config sender=USERID"),
        ({**BASE, "sender": "zhangsan"}, "sender is only for mode=customer"),
        ({**BASE, "mode": "app", "sender": "zhangsan"}, "sender is only for mode=customer"),
        ({**BASE, "mode": "customer", "sender": ""}, "sender must be a non-empty string"),
        ({**BASE, "api_base": "qyapi.weixin.qq.com"}, "api_base must be an http(s) URL"),
        ({**BASE, "timeout_s": "0"}, "timeout_s must be a positive number"),
        ({**BASE, "token": "x"}, "unknown config key(s) token"),
    ],
)
def test_bad_config_is_refused_at_accounts_add_naming_the_account_and_key(
    config: dict[str, str], says: str
) -> None:
    with pytest.raises(UserError) as caught:
        build_channel("wecom", "wc-1", config)
    assert says in str(caught.value) and "'wc-1'" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_good_config_in_both_modes() -> None:
    app = build_channel("wecom", "wc-1", {**BASE, "agent_id": 1000002})
    assert isinstance(app, WecomChannel) and (app.mode, app.agent_id) == ("app", 1000002)
    assert app.api_base == "https://qyapi.weixin.qq.com"
    customer = build_channel("wecom", "wc-2", {**BASE, "mode": "customer", "sender": "lisi"})
    assert isinstance(customer, WecomChannel) and customer.sender == "lisi"
    assert app.send_timeout_s == customer.send_timeout_s == 4 * (3 + 10)


def test_neither_the_secret_nor_a_token_reaches_a_log_a_repr_or_an_error(
    wecom: WecomApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    sender, customer = channel(wecom), customer_channel(wecom)
    sender.send(message("zhangsan", "一"))
    wecom.then("message/send", EXPIRE, PASS, Errcode(60020))
    sender.send(message("zhangsan", "二"))
    with pytest.raises(SenderAtRisk) as refused:
        sender.send(message("zhangsan", "三"))
    task = customer.send(message("wmAAAA0001"))
    customer.confirmations(task.message_id)
    assert "cgi-bin/gettoken?corpid=" in caplog.text and "access_token=***" in caplog.text
    assert "corpsecret=***" in caplog.text, "httpx logged every request, credentials masked"
    shown = "\n".join([caplog.text, repr(sender), repr(customer), str(refused.value)])
    assert len(wecom.issued()) == 2
    for hidden in (SECRET, *wecom.issued()):
        assert hidden not in shown
    assert "'secret': '***'" in repr(sender)


def test_a_campaign_checks_each_sender_against_its_own_modes_text_limit(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    # 1,000 CJK characters: over an application message's 2,048 bytes, inside a task's 4,000.
    assert WecomChannel.text_limit({"mode": "customer"}) == 1333
    assert WecomChannel.text_limit({}) == WecomChannel.max_text_len == 682
    ctx = make_context(db_url, redis_url, tmp_path)
    (ctx.settings.templates_dir / "outline.j2").write_text("课" * 990 + "{{ contact.name }}")
    add_accounts(ctx.engine, ["app"], channel="wecom", **BASE)
    add_accounts(ctx.engine, ["tasks"], channel="wecom", **BASE, mode="customer", sender="zs")
    add_contacts(ctx.engine, 2, channel="wecom")
    with Session(ctx.engine) as session:
        session.add(Segment(name="all", expression="tag = python"))
        session.commit()

    def create(name: str, senders: str) -> None:
        accounts = senders.split(",")
        spec = CampaignSpec(name=name, segment="all", template="outline", accounts=accounts)
        create_campaign(ctx.engine, ctx.settings.templates_dir, spec)

    create("by-task", "tasks")
    # The lanes check the same limit when they render.
    tasks = build_channel("wecom", "tasks", {**BASE, "mode": "customer", "sender": "zs"})
    assert Composer(ctx.settings, "wecom", tasks, "i1", "s").max_text_len == 1333
    with pytest.raises(UserError, match=r"is 993 characters; the limit is 682 .*2 members"):
        create("by-app", "app")
    # Both senders: only the members the application account would message are refused.
    with pytest.raises(UserError, match=r"cannot be rendered for 1 of 2 members"):
        create("both", "app,tasks")
    ctx.engine.dispose()
