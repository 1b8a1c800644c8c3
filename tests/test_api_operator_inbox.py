"""The human inbox through `/v1`: a handoff waits, its thread is the CLI's, a person's reply
leaves through the same account and closes the handoff.

SQLite and PostgreSQL, real Redis; the lane runs in-process on the memory channel.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Siyu
from tests.support.operator import Api, error_of, token_api
from tests.support.world import REPO_TEMPLATES, add_accounts, add_contacts
from worker.channels.memory import HUB
from worker.dispatch.lane import run_lane
from worker.replies.handle import handle_inbound
from worker.replies.inbound import InboundPayload, record_inbound


@pytest.fixture
def api(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Api]:
    """Replies due at once; the shipped reply persona and knowledge."""
    for made in token_api(db_url, redis_url, tmp_path, reply_delay_max_s=0):
        shutil.copytree(REPO_TEMPLATES / "replies", made.ctx.settings.templates_dir / "replies")
        add_accounts(made.ctx.engine, ["a1", "a2"])
        add_contacts(made.ctx.engine, 3)
        yield made


def learner_says(api: Api, text: str, message_id: str, account: str = "a2") -> str:
    """What a verified inbound webhook stores, then the assistant's decision on it."""
    payload = InboundPayload.model_validate(
        {"message_id": message_id, "account": account, "from": "u000002", "text": text}
    )
    stored = record_inbound(api.ctx.engine, "memory", payload)
    handled = handle_inbound(api.ctx.engine, api.ctx.settings, stored.message_id)
    assert handled is not None
    return str(handled.decision.action)


def test_a_person_answers_a_handoff_from_the_inbox_through_the_same_account(
    api: Api, siyu: Siyu
) -> None:
    assert learner_says(api, "转人工", "in-1") == "handoff"
    http = api.client()
    [waiting] = http.get("/v1/inbox").json()
    assert waiting == json.loads(siyu("inbox", "--json").stdout)[0]
    assert (waiting["contact"], waiting["account"]) == ("u000002", "a2")
    thread = http.get("/v1/conversations", params={"contact": "u000002"}).json()
    assert thread == json.loads(siyu("conversations", "show", "u000002", "--json").stdout)
    assert thread[0]["messages"][0]["from"] == "learner"

    answer = "  您好，我是王老师，马上为您处理  "
    replied = http.post(f"/v1/conversations/{waiting['conversation']}/reply", json={"text": answer})
    assert replied.status_code == 200, replied.text
    assert replied.json()["message"] == (
        f"reply to u000002 via a2 queued (conversation #{waiting['conversation']}); "
        "the handoff is closed"
    )
    assert replied.json()["handoff_closed"] is True and replied.json()["warnings"] == []
    assert http.get("/v1/inbox").json() == []
    accounts = {a["name"]: a for a in http.get("/v1/accounts").json()}
    assert accounts["a2"]["state"] == "active"
    HUB.clear()
    assert run_lane(api.ctx, 2, slice_s=5).sent == 2  # the holding reply, then the person's
    assert [m.text for _, m in HUB.by_key.values()][-1] == answer.strip()


@pytest.mark.parametrize(
    ("conversation", "text", "status", "message"),
    [
        ("abc", "hi", 400, "CONVERSATION is the number `siyu inbox` shows, such as 12 or #12"),
        ("99", "hi", 404, "no conversation #99; `siyu inbox` lists those waiting"),
        ("1", "   ", 400, "the reply is empty: give the text to send"),
    ],
)
def test_a_reply_that_cannot_be_sent_is_refused_with_the_clis_message(
    api: Api, conversation: str, text: str, status: int, message: str
) -> None:
    assert learner_says(api, "转人工", "in-1") == "handoff"
    http = api.client()
    refused = http.post(f"/v1/conversations/{conversation}/reply", json={"text": text})
    assert error_of(refused, status).startswith(message)
    assert len(http.get("/v1/inbox").json()) == 1, "still waiting"


def test_a_thread_of_a_stranger_is_not_found(api: Api) -> None:
    http = api.client()
    missing = http.get("/v1/conversations", params={"contact": "u000009"})
    assert error_of(missing, 404) == "no conversation with 'u000009'"
