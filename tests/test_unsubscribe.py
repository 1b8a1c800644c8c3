"""Unsubscribe links: tokens only the secret's holder can make, and the `siyu api` routes that
answer them over real HTTP on SQLite and PostgreSQL (GET asks, only POST unsubscribes)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine, delete, select

from tests.support.serving import serving
from tests.support.world import add_contacts
from worker.api.app import create_app
from worker.config import Settings
from worker.errors import UserError
from worker.store import tables
from worker.unsubscribe import link_for, make_token, read_token

SECRET = "a-long-random-unsubscribe-secret"
CT, S = tables.contacts.c, tables.suppressions.c


@pytest.mark.parametrize("contact_id", [1, 255, 256, 65_537, 2**40, 2**63 - 1])
def test_a_token_names_its_contact_and_is_short_and_url_safe(contact_id: int) -> None:
    token = make_token(SECRET, contact_id)
    assert read_token(SECRET, token) == contact_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,33}", token), token


def test_a_token_is_the_same_each_time_and_differs_per_contact_and_secret() -> None:
    assert make_token(SECRET, 42) == make_token(SECRET, 42)
    assert len({make_token(SECRET, 42), make_token(SECRET, 43), make_token("x" * 20, 42)}) == 3


def test_every_altered_character_is_refused() -> None:
    token = make_token(SECRET, 1234)
    for i, char in enumerate(token):
        for other in {"A", "b", "-", "_", "0"} - {char}:
            assert read_token(SECRET, token[:i] + other + token[i + 1 :]) is None


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t + "=",
        lambda t: t + "==",
        lambda t: "",
        lambda t: "A",
        lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else t + "+",
        lambda t: t[:5] + "é" + t[6:],
        lambda t: t[:5] + "." + t[6:],
        lambda t: make_token("another-secret-of-20", 1234),
        lambda t: make_token(SECRET, 1234)[:3] + make_token(SECRET, 1235)[3:],
    ],
)
def test_a_forged_or_damaged_token_names_no_one(forge: Callable[[str], str]) -> None:
    token = make_token(SECRET, 1234)
    assert read_token(SECRET, forge(token)) is None


def test_a_token_with_an_id_and_no_mac_or_a_zero_id_is_refused() -> None:
    def encode(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    assert read_token(SECRET, encode(b"\x04\xd2")) is None  # no MAC at all
    assert read_token(SECRET, encode(b"\x00" * 17)) is None
    with pytest.raises(ValueError, match="positive"):
        make_token(SECRET, 0)


def test_links_are_served_only_with_both_settings() -> None:
    assert link_for(Settings(), 7) is None
    assert link_for(Settings(public_url="https://m.example.com"), 7) is None
    assert link_for(Settings(unsubscribe_secret=SECRET), 7) is None
    served = Settings(public_url="https://m.example.com/", unsubscribe_secret=SECRET)
    assert link_for(served, 7) == f"https://m.example.com/u/{make_token(SECRET, 7)}"


def test_a_short_secret_is_refused_without_being_shown() -> None:
    with pytest.raises(UserError, match="SIYU_UNSUBSCRIBE_SECRET must be at least 16") as caught:
        Settings(unsubscribe_secret="tooshort-secret")
    assert "tooshort-secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://m.example.com", "m.example.com", "https://m/x?a=1"])
def test_a_public_url_that_is_not_a_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(public_url=url)


def test_a_blank_setting_is_unset() -> None:
    assert Settings(public_url=" ", unsubscribe_secret="").unsubscribe_secret is None


# The routes, over real HTTP.


@dataclass
class Api:
    url: str
    engine: Engine

    def link(self, contact_id: int, secret: str = SECRET) -> str:
        return f"{self.url}/u/{make_token(secret, contact_id)}"

    def suppressions(self) -> dict[str, str]:
        query = select(CT.external_id, S.reason).join(tables.contacts, CT.id == S.contact_id)
        with self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    def contact_id(self, external_id: str) -> int:
        with self.engine.connect() as conn:
            query = select(CT.id).where(CT.external_id == external_id)
            return int(conn.execute(query).scalar_one())


def running_api(engine: Engine, secret: str | None = SECRET) -> Iterator[Api]:
    with serving(create_app(Settings(unsubscribe_secret=secret), engine)) as url:
        yield Api(url, engine)


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    add_contacts(engine, 3, channel="smtp")
    yield from running_api(engine)


ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


def test_get_shows_a_form_and_never_unsubscribes(api: Api) -> None:
    link = api.link(api.contact_id("u000001"))
    for _ in range(3):  # a mail scanner prefetching the link, more than once
        page = httpx.get(link)
        assert page.status_code == 200 and '<form method="post">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert api.suppressions() == {}


def test_a_one_click_post_unsubscribes_that_contact_only(api: Api) -> None:
    link = api.link(api.contact_id("u000002"))
    done = httpx.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert api.suppressions() == {"u000002": "unsubscribed"}
    again = httpx.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status_code == 200 and api.suppressions() == {"u000002": "unsubscribed"}


def test_the_confirmation_form_unsubscribes(api: Api) -> None:
    link = api.link(api.contact_id("u000003"))
    form = re.search(r'name="([^"]+)" value="([^"]+)"', httpx.get(link).text)
    assert form is not None
    assert httpx.post(link, data={form[1]: form[2]}).status_code == 200
    assert api.suppressions() == {"u000003": "unsubscribed"}


def test_an_earlier_suppression_keeps_its_reason(api: Api) -> None:
    contact_id = api.contact_id("u000001")
    with api.engine.begin() as conn:
        conn.execute(tables.suppressions.insert().values(contact_id=contact_id, reason="bounced"))
    assert httpx.post(api.link(contact_id)).status_code == 200
    assert api.suppressions() == {"u000001": "bounced"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_token_is_a_bare_404_and_changes_nothing(api: Api, method: str) -> None:
    good = api.link(api.contact_id("u000001"))
    for link in (
        good[:-1] + ("B" if good[-1] != "B" else "C"),
        api.link(1, "other-secret-20-chars"),
    ):
        answer = httpx.request(method, link, content=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 404 and answer.text.count("<p>") == 1
        assert "token" not in answer.text.lower() and "secret" not in answer.text.lower()
    assert api.suppressions() == {}


def test_without_a_secret_no_link_is_answered(engine: Engine) -> None:
    add_contacts(engine, 1, channel="smtp")
    for api in running_api(engine, secret=None):
        answer = httpx.post(api.link(api.contact_id("u000001")))
        assert answer.status_code == 404 and api.suppressions() == {}


def test_a_deleted_contact_s_link_still_answers_and_stores_nothing(api: Api) -> None:
    contact_id = api.contact_id("u000001")
    with api.engine.begin() as conn:
        conn.execute(delete(tables.contacts).where(CT.id == contact_id))
    assert httpx.post(api.link(contact_id)).status_code == 200
    assert api.suppressions() == {}
