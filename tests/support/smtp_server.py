"""A faithful local mail server for the `smtp` channel (aiosmtpd on loopback, a free port).

It speaks real SMTP, with STARTTLS or implicit TLS under a self-signed certificate made at test
time (`make_certificate`, by the `openssl` command) and AUTH PLAIN/LOGIN for one valid user. It
records every DATA attempt and every accepted message, parsed with `email`, and counts
`duplicate_attempts`: a message whose Message-ID it had already accepted. Exactly-once is
proven there, every attempt counted, not by what was accepted.

What it answers is scripted per stage, first come first served (`then`), else it accepts:

    then("connect", "421 4.3.2 ...")     the greeting: refuse the connection and close it
    then("mail" | "rcpt", "451 ...")     refuse that command
    then("data", "451 4.3.0 ...")        refuse the message after reading it (not accepted)
    then("data", ACCEPT_THEN_DROP)       accept the message, then close without answering
    then("data", Late(5))                accept the message, answer 250 after 5 s
    refuse("x@example.com")              refuse that address at RCPT every time (550 5.1.1)

`hang_up()` closes every open connection from the server's side, as an idle timeout does.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.mockplatform import free_port

NO_SUCH_USER = "550 5.1.1 <{}>: Recipient address rejected: User unknown in local recipient table"
USER, PASSWORD = "courses@example.com", "Pa55-w0rd-7e1b9c"
ACCEPT_THEN_DROP = "accept, then close without answering"


@dataclass(frozen=True)
class Late:
    """Accept the message and answer only after `delay_s` (a client timeout)."""

    delay_s: float


Scripted = str | Late


@dataclass
class Attempt:
    """One DATA attempt: the envelope, the parsed message, who was logged in, over TLS?"""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes  # as received
    user: str | None
    tls: bool

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class MailServer:
    host: str = "127.0.0.1"
    port: int = 0
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[str, Attempt] = field(default_factory=dict)  # by Message-ID
    duplicate_attempts: int = 0
    connections: int = 0
    logins: list[str] = field(default_factory=list)  # every AUTH attempt's user name
    commands: list[str] = field(default_factory=list)  # MAIL, RCPT and DATA, in order
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    open_connections: list[asyncio.BaseTransport] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None

    def then(self, stage: str, *replies: Scripted) -> None:
        with self.lock:
            self.script.setdefault(stage, []).extend(replies)

    def next(self, stage: str) -> Scripted | None:
        with self.lock:
            queue = self.script.get(stage) or []
            return queue.pop(0) if queue else None

    def refuse(self, address: str) -> None:
        self.refuse_rcpt[address] = NO_SUCH_USER.format(address)

    def hang_up(self, say: str | None = None) -> None:
        """Close every open connection, as a server does to a client idle for too long,
        after saying `say` (e.g. Postfix's "421 4.4.2 ... Error: timeout exceeded")."""
        assert self.loop is not None
        loop = self.loop
        with self.lock:
            transports, self.open_connections = self.open_connections, []
        done = threading.Event()

        def close() -> None:
            for transport in transports:
                if say is not None:
                    assert isinstance(transport, asyncio.WriteTransport)
                    transport.write(say.encode() + b"\r\n")
                transport.close()
            loop.call_soon(done.set)  # after the sockets' own close, which close() queued

        loop.call_soon_threadsafe(close)
        assert done.wait(5)

    @property
    def messages(self) -> list[EmailMessage]:
        return [attempt.message for attempt in self.accepted.values()]


class _Handler:
    def __init__(self, box: MailServer) -> None:
        self.box = box

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.box.commands.append("MAIL")
        scripted = self.box.next("mail")
        if isinstance(scripted, str):
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.box.commands.append("RCPT")
        refused = self.box.refuse_rcpt.get(address)
        scripted = refused or self.box.next("rcpt")
        if isinstance(scripted, str):
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.box.commands.append("QUIT")
        return "221 Bye"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        box = self.box
        box.commands.append("DATA")
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object")
        user = session.auth_data.login.decode() if session.authenticated else None
        sender, rcpt_tos = envelope.mail_from or "", list(envelope.rcpt_tos)
        attempt = Attempt(sender, rcpt_tos, parsed, raw, user, bool(tls))
        scripted = box.next("data")
        refused = isinstance(scripted, str) and scripted != ACCEPT_THEN_DROP
        with box.lock:
            box.attempts.append(attempt)
            if attempt.message_id in box.accepted:
                box.duplicate_attempts += 1
            if not refused:
                box.accepted.setdefault(attempt.message_id, attempt)
        if scripted == ACCEPT_THEN_DROP:
            assert server.transport is not None
            server.transport.close()
            await asyncio.sleep(3600)  # cancelled when the connection is gone
        if isinstance(scripted, Late):
            await asyncio.sleep(scripted.delay_s)
        return scripted if refused and isinstance(scripted, str) else "250 2.0.0 Ok: queued"


class _Greeter(SMTP):
    """aiosmtpd's SMTP with a scriptable greeting (a 421 "try again later" at connect)."""

    def __init__(self, box: MailServer, *args: Any, auth_required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set after construction, which warns of AUTH required without TLS: this fake's
        # deliberate plain case (loopback, a test user).
        self._auth_required = auth_required
        self.box = box

    async def _handle_client(self) -> None:
        with self.box.lock:
            self.box.connections += 1
            if self.transport is not None:
                self.box.open_connections.append(self.transport)
        scripted = self.box.next("connect")
        if isinstance(scripted, str):
            await self.push(scripted)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, box: MailServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.box = box

    def factory(self) -> SMTP:
        return _Greeter(self.box, self.handler, **self.SMTP_kwargs)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticate(box: MailServer) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        box.logins.append(user)
        if user == USER and password == PASSWORD:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    return check


@contextmanager
def running_mail_server(
    *, security: str = "none", certificate: tuple[Path, Path] | None = None, auth: bool = False
) -> Iterator[MailServer]:
    """Serve on a free loopback port; `security` as the channel's (`none`, `starttls`, `ssl`),
    with `certificate` for TLS; with `auth`, only `USER`/`PASSWORD` may send."""
    box = MailServer()
    tls: ssl.SSLContext | None = None
    if certificate is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*certificate)
    options: dict[str, Any] = {
        "server_hostname": "mail.test", "ready_timeout": 10, "auth_required": False
    }  # fmt: skip
    if security == "ssl":
        options |= {"ssl_context": tls, "auth_require_tls": False}
    elif security == "starttls":
        options |= {"tls_context": tls, "require_starttls": True}
    else:
        options |= {"auth_require_tls": False}
    if auth:
        options |= {"authenticator": _authenticate(box), "auth_required": True}
    box.port = free_port()
    controller = _Controller(box, _Handler(box), hostname=box.host, port=box.port, **options)
    controller.start()
    box.loop = controller.loop
    box.connections, box.open_connections = 0, []  # the controller's own check that it is up
    try:
        yield box
    finally:
        controller.stop()
