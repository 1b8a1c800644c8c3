"""The `smtp` channel against a real SMTP server on loopback (`tests/support/smtp_server.py`,
aiosmtpd): every documented reply mapped, the headers a receiver sees, TLS and AUTH, one
connection kept per account, the password shown nowhere; and what compose hands the channel."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from email.message import MIMEPart
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.smtp_server import (
    ACCEPT_THEN_DROP,
    PASSWORD,
    USER,
    Late,
    MailServer,
    make_certificate,
    running_mail_server,
)
from tests.support.world import add_contacts
from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.mail import REPLY_SUBJECT
from worker.channels.memory import MemoryChannel
from worker.channels.registry import build_channel
from worker.channels.smtp import SmtpChannel
from worker.config import Settings
from worker.dispatch.compose import Composer, Prepared, split_subject
from worker.dispatch.outbox import Claimed
from worker.dispatch.runs import RunInfo
from worker.errors import UserError
from worker.store import tables
from worker.store.models import DeliveryState, utcnow
from worker.unsubscribe import read_token

TO = "wang.xiaoming@example.org"
SUBJECT = "Python 入门：开课啦"
MESSAGE = OutboundMessage(
    TO, "王同学，Python 入门开课啦\n第二行", "siyu-i1-7-42", "spring", SUBJECT
)
FROM = "思语课堂 <courses@example.com>"


@pytest.fixture
def box() -> Iterator[MailServer]:
    with running_mail_server() as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def channel(box: MailServer, **config: str) -> SmtpChannel:
    settings = {"host": box.host, "port": str(box.port), "from": FROM, "security": "none",
                "timeout_s": "2", **config}  # fmt: skip
    made = build_channel("smtp", "mail-1", settings)
    assert isinstance(made, SmtpChannel)
    return made


def text_of(part: MIMEPart) -> str:
    """A text part as a mail reader shows it (MIME text travels with CRLF line ends)."""
    return str(part.get_content()).replace("\r\n", "\n").strip("\n")


def test_one_message_per_send_with_the_headers_a_receiver_expects(box: MailServer) -> None:
    result = channel(box).send(MESSAGE)
    [attempt] = box.attempts
    mail = attempt.message
    assert result == SendResult("<siyu-i1-7-42@example.com>")
    assert attempt.mail_from == "courses@example.com" and attempt.rcpt_tos == [TO]
    assert mail["Message-ID"] == "<siyu-i1-7-42@example.com>", "derived from the key"
    assert mail["Subject"] == SUBJECT and mail["To"] == TO
    assert mail["From"].addresses[0].display_name == "思语课堂"
    assert mail["Date"] is not None
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert text_of(mail) == "王同学，Python 入门开课啦\n第二行"


def test_non_ascii_headers_and_body_travel_7bit_clean(box: MailServer) -> None:
    channel(box).send(MESSAGE)
    raw = box.attempts[0].raw
    [subject] = [line for line in raw.split(b"\r\n") if line.startswith(b"Subject:")]
    assert raw.isascii(), "no server needs 8BITMIME or SMTPUTF8"
    assert subject.startswith(b"Subject: Python =?utf-8?"), "RFC 2047 encoded words"
    assert box.attempts[0].message["Subject"] == SUBJECT


def test_lines_that_start_with_a_dot_arrive_whole(box: MailServer) -> None:
    text = "line one\n.\n.leading dot\n..two dots\n."
    channel(box).send(OutboundMessage(TO, text, "siyu-i1-7-48", "spring", "s"))
    assert text_of(box.attempts[0].message) == text


def test_a_retry_is_the_same_message_to_the_receiver(box: MailServer) -> None:
    sender = channel(box)
    box.then("data", "451 4.3.0 Error: queue file write error")
    with pytest.raises(Transient):
        sender.send(MESSAGE)
    sender.send(MESSAGE)
    assert [a.message_id for a in box.attempts] == ["<siyu-i1-7-42@example.com>"] * 2
    assert len(box.accepted) == 1 and box.duplicate_attempts == 0
    sender.send(MESSAGE)  # what a resend would look like: the fake counts it
    assert box.duplicate_attempts == 1


@pytest.mark.parametrize(
    ("url", "unsubscribe", "one_click"),
    [
        (None, "<mailto:courses@example.com?subject=unsubscribe>", None),
        (
            "https://mail.example.com/u/AbC",
            "<mailto:courses@example.com?subject=unsubscribe>, <https://mail.example.com/u/AbC>",
            "List-Unsubscribe=One-Click",
        ),
        (
            "http://127.0.0.1:8000/u/AbC",
            "<mailto:courses@example.com?subject=unsubscribe>, <http://127.0.0.1:8000/u/AbC>",
            None,  # RFC 8058 one-click only for https
        ),
    ],
    ids=["mailto-only", "https", "http"],
)
def test_campaign_mail_carries_list_unsubscribe(
    box: MailServer, url: str | None, unsubscribe: str, one_click: str | None
) -> None:
    message = OutboundMessage(TO, "正文", "siyu-i1-7-43", "spring", SUBJECT, url)
    channel(box).send(message)
    mail = box.attempts[0].message
    assert " ".join(str(mail["List-Unsubscribe"]).split()) == unsubscribe
    assert mail["List-Unsubscribe-Post"] == one_click


def test_a_reply_has_no_list_headers_and_the_reply_subject(box: MailServer) -> None:
    channel(box).send(OutboundMessage(TO, "您好，学费是 199 元。", "siyu-i1-m9"))
    mail = box.attempts[0].message
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None
    assert mail["Subject"] == REPLY_SUBJECT


HTML = (
    "<!DOCTYPE html>\n<html><head><title>t</title><style>p {color: red}</style></head>"
    '<body><h1>开课啦</h1><p>王同学，<a href="https://edu.example.com/py?c=1&amp;t=2">报名</a>'
    "</p><ul><li>周一</li><li>周三</li></ul><script>track()</script></body></html>"
)


def test_an_html_document_goes_as_multipart_alternative_with_a_text_part(
    box: MailServer,
) -> None:
    channel(box).send(OutboundMessage(TO, HTML, "siyu-i1-7-44", "spring", SUBJECT))
    mail = box.attempts[0].message
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text_of(html) == HTML
    assert text_of(text) == (
        "开课啦\n\n王同学，报名 (https://edu.example.com/py?c=1&t=2)\n\n- 周一\n- 周三"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>王同学，开课啦</p>", "王同学，开课啦"),
        ("<div>开课啦</div><div>周一</div>", "开课啦\n\n周一"),
        ("<table><tr><td>周一</td></tr><tr><td>周三</td></tr></table>", "周一\n\n周三"),
        ("<body><h2>开课啦</h2></body>", "开课啦"),
        ("<!-- preheader --><p>开课啦</p>", "开课啦"),
        ("\ufeff<!DOCTYPE html><html><body><p>开课啦</p></body></html>", "开课啦"),
        ("\n  <!doctype HTML>\n<p>开课啦</p>", "开课啦"),
        ("<H1 class=\"t\">开课啦</H1>", "开课啦"),
        ('<a href="https://edu.example.com/py">报名</a>', "报名 (https://edu.example.com/py)"),
        ("<strong>开课啦</strong><br>周一", "开课啦\n周一"),
        ("<span>开课啦</span>", "开课啦"),
    ],
    ids=["p", "div", "table", "body", "comment", "bom-doctype", "space-doctype", "upper-h1",
         "a", "strong-br", "span"],
)  # fmt: skip
def test_a_text_that_opens_like_html_goes_as_html_with_a_text_part(
    box: MailServer, html: str, text: str
) -> None:
    channel(box).send(OutboundMessage(TO, html, "siyu-i1-7-45", "spring", "s"))
    mail = box.attempts[0].message
    assert mail.get_content_type() == "multipart/alternative"
    plain, sent = mail.iter_parts()
    assert text_of(plain) == text and "<" not in text_of(plain)
    assert text_of(sent) == html.removeprefix("\ufeff").strip("\n")


@pytest.mark.parametrize(
    "plain",
    [
        "a <b> is not HTML",
        "<3 想你了",
        "a<b 时 b>a",
        "<<Python 入门>> 开课啦",
        "<html5 课程> 下周开课",
        "<b 还没写完",
        "<python> 课程",
        "< p>不是标签</p>",
    ],
)
def test_a_text_that_does_not_open_like_html_stays_plain(box: MailServer, plain: str) -> None:
    channel(box).send(OutboundMessage(TO, plain, "siyu-i1-7-45", "spring", "s"))
    mail = box.attempts[0].message
    assert mail.get_content_type() == "text/plain" and text_of(mail) == plain


GREETING_421 = "421 4.3.2 Service not available, closing transmission channel"


@pytest.mark.parametrize(
    ("stage", "reply", "raised"),
    [
        ("connect", GREETING_421, Transient),
        ("connect", "554 5.7.1 Client host rejected: listed at zen.example", SenderAtRisk),
        ("mail", "451 4.3.0 Temporary lookup failure", Transient),
        ("mail", "421 4.7.0 Too many concurrent connections", Transient),
        ("mail", "553 5.7.1 Sender address rejected: not owned by user", SenderAtRisk),
        ("mail", "550 5.7.1 Sender blocked", SenderAtRisk),
        (
            "rcpt",
            f"550 5.1.1 <{TO}>: Recipient address rejected: User unknown",
            RecipientUnreachable,
        ),
        ("rcpt", "551 5.1.6 User not local; please try <x@example.net>", RecipientUnreachable),
        ("rcpt", "553 5.1.3 Bad recipient address syntax", RecipientUnreachable),
        ("rcpt", "550 5.1.2 Recipient address rejected: Domain not found", RecipientUnreachable),
        ("rcpt", "556 5.1.10 Recipient address has null MX", RecipientUnreachable),
        ("rcpt", "550 5.2.1 Mailbox disabled, not accepting messages", RecipientUnreachable),
        ("rcpt", "550 No such user here", RecipientUnreachable),
        ("rcpt", "553 Requested action not taken: mailbox name not allowed", RecipientUnreachable),
        ("rcpt", "450 4.2.1 Mailbox busy", Transient),
        ("rcpt", "452 4.5.3 Too many recipients", Transient),
        ("rcpt", "550 5.7.1 Relaying denied", SenderAtRisk),
        (
            "rcpt",
            "550 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org",
            SenderAtRisk,
        ),
        (
            "rcpt",
            "553 5.7.1 <courses@example.com>: Sender address rejected: not logged in",
            SenderAtRisk,
        ),
        ("rcpt", "554 5.7.1 Relay access denied", SenderAtRisk),
        ("rcpt", "553 5.1.7 The sender address is invalid", SenderAtRisk),
        ("rcpt", "550 5.1.8 Sender address rejected: Domain not found", SenderAtRisk),
        ("rcpt", "552 5.2.2 Mailbox full", ChannelError),
        ("rcpt", "554 Transaction failed", ChannelError),
        ("data", "451 4.3.0 Error: queue file write error", Transient),
        ("data", "452 4.3.1 Insufficient system storage", Transient),
        ("data", "554 5.7.1 Message rejected as spam", ChannelError),
        ("data", "550 5.7.1 Message contains a virus", ChannelError),
        ("data", "552 5.3.4 Message size exceeds fixed limit", ChannelError),
        (
            "data",
            "550-5.7.26 This mail has been blocked because the sender is unauthenticated.\r\n"
            "550 5.7.26 DMARC policy of example.com: SPF and DKIM do not pass",
            SenderAtRisk,
        ),
        ("data", ACCEPT_THEN_DROP, DeliveryUnknown),
        ("data", Late(4), DeliveryUnknown),
    ],
    ids=lambda v: (
        "late"
        if isinstance(v, Late)
        else "accept-then-drop"
        if v == ACCEPT_THEN_DROP
        else "-".join(v.split()[:2])
        if isinstance(v, str)
        else v.__name__
    ),
)
def test_every_server_reply_maps_to_its_outcome_and_the_next_send_goes_on(
    box: MailServer, stage: str, reply: str | Late, raised: type[ChannelError]
) -> None:
    sender = channel(box, timeout_s="1")
    box.then(stage, reply)
    with pytest.raises(ChannelError) as caught:
        sender.send(MESSAGE)
    assert type(caught.value) is raised, caught.value
    text = str(caught.value)
    assert TO not in text and "王同学" not in text and "mail-1" in text
    accepted = stage == "data" and (reply == ACCEPT_THEN_DROP or isinstance(reply, Late))
    assert len(box.accepted) == int(accepted)
    sender.send(OutboundMessage("next@example.org", "下一封", "siyu-i1-7-99", "spring", "s"))
    assert "<siyu-i1-7-99@example.com>" in box.accepted


def test_a_refused_recipient_keeps_the_connection_for_the_next_send(box: MailServer) -> None:
    sender = channel(box)
    box.refuse(TO)
    with pytest.raises(RecipientUnreachable):
        sender.send(MESSAGE)
    sender.send(OutboundMessage("other@example.org", "x", "siyu-i1-7-46", "spring", "s"))
    assert box.connections == 1 and box.commands == ["MAIL", "RCPT", "MAIL", "RCPT", "DATA"]


def test_one_connection_serves_many_sends_and_close_quits(box: MailServer) -> None:
    sender = channel(box)
    for i in range(3):
        sender.send(OutboundMessage(f"u{i}@example.org", "x", f"siyu-i1-7-{i}", "spring", "s"))
    sender.close()
    assert box.connections == 1 and box.commands[-1] == "QUIT" and len(box.accepted) == 3


@pytest.mark.parametrize("say", [None, "421 4.4.2 mail.test Error: timeout exceeded"])
def test_a_connection_the_server_closed_while_idle_is_opened_again(
    box: MailServer, say: str | None
) -> None:
    sender = channel(box)
    sender.send(OutboundMessage("a@example.org", "x", "siyu-i1-7-1", "spring", "s"))
    box.hang_up(say)
    sender.send(OutboundMessage("b@example.org", "x", "siyu-i1-7-2", "spring", "s"))
    assert box.connections == 2 and len(box.accepted) == 2 and box.duplicate_attempts == 0


@pytest.mark.parametrize("listening", [False, True], ids=["not-listening", "never-greets"])
def test_a_server_that_does_not_answer_is_transient(listening: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if listening:
            sock.listen()  # connections wait in the backlog: no greeting ever comes
        config = {"host": "127.0.0.1", "port": str(sock.getsockname()[1]), "from": FROM,
                  "security": "none", "timeout_s": "0.5"}  # fmt: skip
        if not listening:
            sock.close()
        with pytest.raises(Transient):
            build_channel("smtp", "mail-1", config).send(MESSAGE)


def test_an_address_that_is_not_one_fails_that_recipient_without_a_connection(
    box: MailServer,
) -> None:
    for bad in ("13800138000", "用户@例子.中国", "a@b.org\r\nBcc: c@d.org"):
        with pytest.raises(RecipientUnreachable):
            channel(box).send(OutboundMessage(bad, "x", "siyu-i1-7-47", "spring", "s"))
    assert box.connections == 0


def test_the_send_timeout_is_the_configured_one(box: MailServer) -> None:
    assert channel(box, timeout_s="7.5").send_timeout_s == 7.5
    assert (
        build_channel("smtp", "m", {"host": "h", "port": "25", "from": FROM}).send_timeout_s == 30
    )


# AUTH, STARTTLS and implicit TLS.


def test_auth_with_the_right_password_sends_and_logs_nothing_of_it(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_mail_server(auth=True) as server:
        channel(server, username=USER, password=PASSWORD).send(MESSAGE)
    assert server.logins == [USER] and server.attempts[0].user == USER
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    printed = capsys.readouterr()  # smtplib's debug output goes to stderr
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    for where in (printed.out, printed.err, *ours):
        assert PASSWORD not in where and plain not in where


def test_a_wrong_password_pauses_the_account_without_showing_it() -> None:
    wrong = "not-the-Pa55word"
    with running_mail_server(auth=True) as server, pytest.raises(SenderAtRisk) as caught:
        channel(server, username=USER, password=wrong).send(MESSAGE)
    assert "535" in str(caught.value) and wrong not in str(caught.value)
    assert server.attempts == []


def test_a_server_that_wants_auth_refuses_mail_from_an_account_without_it() -> None:
    with running_mail_server(auth=True) as server, pytest.raises(SenderAtRisk) as caught:
        channel(server).send(MESSAGE)
    assert "530" in str(caught.value)


def test_the_password_is_not_in_the_repr(box: MailServer) -> None:
    sender = channel(box, username=USER, password=PASSWORD)
    assert PASSWORD not in repr(sender) and "'password': '***'" in repr(sender)
    assert sender.redact(f"oops {PASSWORD}") == "oops ***"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_the_private_ca_and_auth(security: str, certificate: tuple[Path, Path]) -> None:
    with running_mail_server(security=security, certificate=certificate, auth=True) as server:
        tls = channel(server, security=security, ca_file=str(certificate[0]),
                      username=USER, password=PASSWORD)  # fmt: skip
        tls.send(MESSAGE)
        tls.send(OutboundMessage("b@example.org", "x", "siyu-i1-7-2", "spring", "s"))
    assert [(a.tls, a.user) for a in server.attempts] == [(True, USER)] * 2
    assert server.connections == 1


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_certificate_no_trusted_ca_signed_pauses_the_account(
    security: str, certificate: tuple[Path, Path]
) -> None:
    server = running_mail_server(security=security, certificate=certificate)
    with server as box, pytest.raises(SenderAtRisk) as caught:
        channel(box, security=security).send(MESSAGE)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) and box.attempts == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_asked_of_a_server_without_it_pauses_the_account(
    box: MailServer, security: str
) -> None:
    with pytest.raises(SenderAtRisk):
        channel(box, security=security).send(MESSAGE)
    assert box.attempts == []


# Configuration.


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"port": "587", "from": FROM}, "needs --config host=..."),
        ({"host": "smtp.example.com", "from": FROM}, "needs --config port=..."),
        ({"host": "smtp.example.com", "port": "587"}, "needs --config from=..."),
        ({"host": "smtp example", "port": "587", "from": FROM}, "config host must be"),
        ({"host": "h", "port": "smtp", "from": FROM}, "config port must be a number"),
        ({"host": "h", "port": "70000", "from": FROM}, "config port must be a number"),
        ({"host": "h", "port": "587", "from": "courses"}, "config from must be one e-mail"),
        ({"host": "h", "port": "587", "from": "a@x.org, b@x.org"}, "config from must be one"),
        ({"host": "h", "port": "587", "from": FROM, "security": "tls"}, "config security must"),
        ({"host": "h", "port": "587", "from": FROM, "username": USER}, "set password too"),
        ({"host": "h", "port": "587", "from": FROM, "password": PASSWORD}, "set username too"),
        (
            {"host": "h", "port": "587", "from": FROM, "username": USER, "password": "密码-secret"},
            "config password must be ASCII",
        ),
        ({"host": "h", "port": "587", "from": FROM, "ca_file": "/nope.pem"}, "is not a file"),
        (
            {"host": "h", "port": "25", "from": FROM, "security": "none", "ca_file": "/x"},
            "config ca_file needs security=starttls or ssl",
        ),
        ({"host": "h", "port": "587", "from": FROM, "timeout_s": "0"}, "timeout_s must be"),
        (
            {
                "host": "smtp.example.com",
                "port": "25",
                "from": FROM,
                "security": "none",
                "username": USER,
                "password": PASSWORD,
            },
            "security=none would send the password in clear to smtp.example.com; use "
            "security=starttls (port 587) or security=ssl (port 465)",
        ),
        ({"host": "h", "port": "587", "from": FROM, "token": "x"}, "unknown config key(s) token"),
    ],
)
def test_bad_config_is_refused_at_accounts_add_naming_the_key(
    config: dict[str, str], says: str
) -> None:
    with pytest.raises(UserError) as caught:
        build_channel("smtp", "mail-1", config)
    message = str(caught.value)
    assert says in message and "'mail-1'" in message
    assert PASSWORD not in message and "密码-secret" not in message


def test_a_ca_file_that_holds_no_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = {"host": "h", "port": "587", "from": FROM, "ca_file": str(bad)}
    with pytest.raises(UserError, match="holds no PEM certificate"):
        build_channel("smtp", "mail-1", config)


@pytest.mark.parametrize(
    ("host", "credentials", "allowed"),
    [
        ("localhost", True, True),
        ("LOCALHOST.", True, True),
        ("127.0.0.1", True, True),
        ("127.0.0.53", True, True),
        ("::1", True, True),
        ("smtp.example.com", True, False),
        ("localhost.example.com", True, False),
        ("192.168.1.10", True, False),
        ("smtp.example.com", False, True),  # no password, nothing to leak
    ],
)
def test_a_password_goes_in_clear_only_to_a_relay_on_this_machine(
    host: str, credentials: bool, allowed: bool
) -> None:
    config = {"host": host, "port": "25", "from": FROM, "security": "none"}
    if credentials:
        config |= {"username": USER, "password": PASSWORD}
    if allowed:
        made = build_channel("smtp", "mail-1", config)
        assert isinstance(made, SmtpChannel) and made.security == "none"
    else:
        with pytest.raises(UserError, match="security=none would send the password in clear"):
            build_channel("smtp", "mail-1", config)


@pytest.mark.parametrize(("port", "security"), [("465", "ssl"), ("587", "starttls")])
def test_security_defaults_to_ssl_on_465_and_starttls_elsewhere(port: str, security: str) -> None:
    made = build_channel("smtp", "m", {"host": "smtp.example.com", "port": port, "from": FROM})
    assert isinstance(made, SmtpChannel) and made.security == security


# What compose hands the channel.


@pytest.mark.parametrize(
    ("text", "subject", "body"),
    [
        ("Subject: 开课啦\n\n正文", "开课啦", "正文"),
        ("subject:  Python   入门 \r\n正文\n第二行", "Python 入门", "正文\n第二行"),
        ("Subject:\n正文", None, "正文"),
        ("正文\nSubject: 不是第一行", None, "正文\nSubject: 不是第一行"),
        ("Subjects: x\n正文", None, "Subjects: x\n正文"),
    ],
)
def test_only_a_first_subject_line_is_the_subject(
    text: str, subject: str | None, body: str
) -> None:
    assert split_subject(text) == (subject, body)


World = tuple[Engine, Path, dict[str, int]]  # the database, the templates, contact ids


class ShortMail(SmtpChannel):
    max_text_len = 40


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "with_subject.j2").write_text("Subject: {{ contact.name }}，开课啦\n\n正文")
    (templates / "plain.j2").write_text("正文 {{ contact.name }}")
    (templates / "long.j2").write_text("Subject: 短\n\n" + "长" * 40)
    add_contacts(engine, 2, channel="smtp")
    with engine.connect() as conn:
        rows = conn.execute(select(tables.contacts.c.external_id, tables.contacts.c.id)).all()
    return engine, templates, {r[0]: r[1] for r in rows}


MAIL_CONFIG = {"host": "h", "port": "25", "from": FROM}


def prepare(
    world: World,
    template: str,
    variables: dict[str, str] | None = None,
    adapter: Channel | None = None,
    **settings: str,
) -> Prepared:
    engine, templates, ids = world
    info = RunInfo(7, 1, "spring", template, variables or {}, "marketing", utcnow(), None)
    sender = adapter or SmtpChannel("m", MAIL_CONFIG)
    made = Composer(Settings(templates_dir=templates, **settings), "smtp", sender, "i1", "s")
    return made.prepare(engine, [Claimed(1, 7, ids["u000001"], 0)], {7: info})


def compose(world: World, template: str, *args: Any, **kwargs: Any) -> OutboundMessage:
    prepared = prepare(world, template, *args, **kwargs)
    assert prepared.done == [] and len(prepared.todo) == 1
    return prepared.todo[0][1]


def test_the_template_subject_line_becomes_the_subject(world: World) -> None:
    message = compose(world, "with_subject", {"subject": "变量"})
    assert (message.subject, message.text) == ("学员1，开课啦", "正文")


def test_without_a_subject_line_the_subject_var_then_the_campaign_name(world: World) -> None:
    assert compose(world, "plain", {"subject": " 春季\n班 "}).subject == "春季 班"
    assert compose(world, "plain").subject == "spring"


def test_channels_without_subjects_get_the_text_untouched(world: World) -> None:
    message = compose(world, "with_subject", adapter=MemoryChannel("mem", {}))
    assert message.subject is None and message.text == "Subject: 学员1，开课啦\n\n正文"
    assert message.unsubscribe_url is None


def test_the_length_limit_applies_to_the_body(world: World) -> None:
    assert compose(world, "long", adapter=ShortMail("m", MAIL_CONFIG)).text == "长" * 40
    ShortMail.max_text_len = 39
    try:
        [outcome] = prepare(world, "long", adapter=ShortMail("m", MAIL_CONFIG)).done
    finally:
        ShortMail.max_text_len = 40
    assert (outcome.state, outcome.reason) == (DeliveryState.FAILED, "render_error")


def test_campaign_sends_carry_the_unsubscribe_link_when_one_is_served(world: World) -> None:
    secret = "s" * 32
    assert compose(world, "plain").unsubscribe_url is None
    assert compose(world, "plain", unsubscribe_secret=secret).unsubscribe_url is None
    served = {"public_url": "https://m.example.com/", "unsubscribe_secret": secret}
    url = compose(world, "plain", **served).unsubscribe_url
    assert url is not None and url.startswith("https://m.example.com/u/")
    assert read_token(secret, url.rsplit("/", 1)[1]) == world[2]["u000001"]
