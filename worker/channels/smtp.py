"""The `smtp` channel: e-mail through an SMTP submission server, one message per contact.

Configure with `--config host=smtp.example.com --config port=587 --config
from="思语课堂 <courses@example.com>"`, optionally `username=... password=...`,
`security=starttls|ssl|none` (default `ssl` on port 465, else `starttls`), `timeout_s=30` (the
whole of one send: connecting, TLS, AUTH and the mail transaction) and `ca_file=ca.pem` (a
private CA to trust). The contact's `external_id` is its e-mail address.

Every message (built in `mail.py`, stdlib `email` with the SMTP policy) carries `From`, `To`,
`Subject` (the template's `Subject:` line, else the campaign's `--var subject`, else its name;
a reply without one gets `mail.REPLY_SUBJECT`), `Date` and `Message-ID:
<{idempotency key}@{the from domain}>` (RFC 5322 3.6.4), the same for every retry, so a
receiver that deduplicates by Message-ID sees a retry as the same message. Campaign mail also
carries `List-Unsubscribe` (RFC 2369): `<mailto:{from}?subject=unsubscribe>` and, when the
installation serves one (`SIYU_PUBLIC_URL`, `SIYU_UNSUBSCRIBE_SECRET`), the recipient's own
`/u/{token}` link, with `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) when
that link is https. A text that opens like HTML (`mail.is_html`: after a BOM and white space,
`<!DOCTYPE html`, `<!--` or the start tag of a common element such as `<html>`, `<p>`, `<div>`
or `<table>`) goes as `multipart/alternative` (a plain text part derived from the HTML, then
the HTML); any other text as `text/plain`.

One connection per account lane, kept across its sends and opened again when the server
closed it. What the server answers (reply codes: RFC 5321 4.2; enhanced codes such as 5.1.1
"bad destination mailbox": RFC 3463, read at the start of a 5xx reply's text):

    connection refused, timed out or lost before
    the whole message was written                   Transient: retried with backoff
    any 4xx (421, 450, 451, 452; 454 at AUTH)      Transient
    5xx greeting or EHLO, 535 at AUTH, no STARTTLS
    or AUTH offered, a TLS certificate or protocol
    failure, 5xx to MAIL FROM (the sender refused)  SenderAtRisk: the account pauses
    5xx 5.7.x to RCPT TO (relaying denied, a
    blocklisted IP, AUTH needed) or 5.1.7, 5.1.8
    (a bad sender address)                          SenderAtRisk
    5xx 5.1.x to RCPT TO (5.1.1 no such mailbox,
    5.1.2 no such domain, 5.1.10 null MX) or 5.2.1
    (mailbox disabled); 550, 551, 553 to RCPT TO
    without an enhanced code                        RecipientUnreachable: failed
    5xx 5.7.20 to 5.7.27 to DATA or end of data
    (RFC 7372: the sender's SPF, DKIM, DMARC or
    reverse DNS fails)                              SenderAtRisk
    any other 5xx (RCPT TO, DATA, end of data)      ChannelError: failed
    no final reply after the whole message was
    written (a drop or the timeout)                 DeliveryUnknown: `unknown`, never resent
                                                    (SMTP offers no lookup)

The server is usually the account's own submission server: a policy refusal (5.7.x) at RCPT TO
is about the account's standing there, and would refuse every contact alike, so the account
pauses. At DATA or end of data, a 5.7.x other than RFC 7372's (mostly 5.7.1: the content
judged spam or a virus) fails only that message: the next message may pass.

`security=none` with a username and password would send the password in clear: it is refused
at config time unless `host` is `localhost` or a loopback address (a local relay).

The password never appears in a repr, a log line or an error message: smtplib's debug output
stays off, and a server reply quoted in an error has the password and the recipient's address
masked. Neither the message's text nor its recipient is in any error.
"""

from __future__ import annotations

import re
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from functools import cache, partial
from pathlib import Path
from typing import Any, ClassVar

from worker.api.hosts import is_loopback
from worker.channels import mail
from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.channels.errors import (
    ChannelError,
    DeliveryUnknown,
    RecipientUnreachable,
    SenderAtRisk,
    Transient,
)
from worker.channels.http import timeout_seconds
from worker.errors import UserError

DEFAULT_TIMEOUT_S = 30.0
SECURITY = ("starttls", "ssl", "none")
NO_MAILBOX = frozenset({550, 551, 553})  # RFC 5321 4.2.2: mailbox unavailable or not allowed
# RFC 3463's class.subject.detail at the start of a 5xx reply's text (its class is 5 too).
ENHANCED = re.compile(r"5\.(\d{1,3})\.(\d{1,3})(?!\S)")
BAD_SENDER = frozenset({(1, 7), (1, 8)})  # 5.1.7, 5.1.8: the sender's address, not the contact's
SENDER_AUTH = range(20, 28)  # RFC 7372 5.7.20-5.7.27: the sender's SPF, DKIM, DMARC, rDNS, MX
MAIL_FROM, RCPT_TO, DATA, END = "MAIL FROM", "RCPT TO", "DATA", "the end of data"
MESSAGE = "the message"  # written, not asked: only a lost connection can go wrong
Reply = tuple[int, bytes]


class _Deadline:
    """The time one send has left; every socket wait is bounded by it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send's timeout_s is spent")
        return left


class _TLS(ssl.SSLContext):
    """A verifying client context whose handshakes wait no longer than the send has left."""

    deadline: _Deadline | None = None

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.deadline is not None:
            sock.settimeout(self.deadline.left())
        return super().wrap_socket(sock, *args, **kwargs)


class _Client(smtplib.SMTP):
    """smtplib's client whose opening (connect, implicit TLS, greeting) keeps to the deadline:
    `_get_socket` is smtplib's own hook for how the socket is made (`SMTP_SSL` overrides it)."""

    def __init__(self, deadline: _Deadline, implicit_tls: _TLS | None, **kwargs: Any) -> None:
        self.deadline, self.implicit_tls = deadline, implicit_tls
        super().__init__(timeout=deadline.left(), **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), self.deadline.left())
        try:
            if self.implicit_tls is not None:
                sock = self.implicit_tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(self.deadline.left())  # for the greeting
        except BaseException:
            sock.close()
            raise
        return sock


class SmtpChannel(Channel):
    """Sends e-mail through one mailbox's SMTP server (module docstring)."""

    scheme: ClassVar[str] = "smtp"
    max_text_len: ClassVar[int] = 100_000  # Gmail clips a body above about 102 KB
    default_policy: ClassVar[str] = "smtp"
    has_subject: ClassVar[bool] = True
    wants_unsubscribe_url: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str]] = frozenset(
        {"host", "port", "from", "username", "password", "security", "timeout_s", "ca_file"}
    )
    required_config: ClassVar[frozenset[str]] = frozenset({"host", "port", "from"})
    secret_keys: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(account, config)
        self.host = _host(account, self.config["host"])
        self.port = _port(account, self.config["port"])
        sender = self.config["from"]
        parsed = mail.parse_sender(sender) if isinstance(sender, str) else None
        if parsed is None:
            raise UserError(
                f"account {account!r}: config from must be one e-mail address, e.g. "
                f"courses@example.com or 'Courses <courses@example.com>', got {sender!r}"
            )
        self.sender = parsed
        self.security = _security(account, self.config.get("security"), self.port)
        self.credentials = _credentials(account, self.config)
        if self.credentials is not None and self.security == "none" and not is_loopback(self.host):
            raise UserError(
                f"account {account!r}: config security=none would send the password in clear "
                f"to {self.host}; use security=starttls (port 587) or security=ssl (port 465)"
            )
        self.tls = _tls_context(account, self.security, self.config.get("ca_file"))
        self.timeout_s = timeout_seconds(account, self.config.get("timeout_s", DEFAULT_TIMEOUT_S))
        self._conn: smtplib.SMTP | None = None

    @property
    def send_timeout_s(self) -> float:
        return self.timeout_s

    def send(self, message: OutboundMessage) -> SendResult:
        to = mail.parse_address(message.to)
        if to is None:
            raise RecipientUnreachable(
                f"{self._who()}: the contact's external_id is not an ASCII e-mail address"
            )
        built = mail.build(message, to.addr_spec, self.sender)
        payload = built.as_bytes()
        deadline = _Deadline(self.timeout_s)
        address = to.addr_spec
        conn = self._mail_from(deadline, address)
        self._ask(conn, RCPT_TO, deadline, lambda: conn.rcpt(address), address)
        self._ask(conn, DATA, deadline, lambda: conn.docmd("DATA"), address, expect=354)
        self._ask(conn, MESSAGE, deadline, lambda: _write(conn, payload), address)
        self._ask(conn, END, deadline, conn.getreply, address, DeliveryUnknown)
        return SendResult(str(built["Message-ID"]))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.sock is not None:
                conn.sock.settimeout(min(self.timeout_s, 5.0))
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _mail_from(self, deadline: _Deadline, to: str) -> smtplib.SMTP:
        """A connection whose server took our MAIL FROM: the kept one while it is alive."""
        conn = self._kept() or self._connect(deadline)
        self._ask(conn, MAIL_FROM, deadline, partial(conn.mail, self.sender.address), to)
        return conn

    def _kept(self) -> smtplib.SMTP | None:
        """The kept connection, unless the server spoke unasked since: it hung up on it, or
        said 421 before doing so (an idle timeout). Then a new one is opened, at no cost."""
        conn = self._conn
        if conn is not None and conn.sock and not select.select([conn.sock], [], [], 0)[0]:
            return conn
        self._drop()
        return None

    def _ask(
        self,
        conn: smtplib.SMTP,
        stage: str,
        deadline: _Deadline,
        call: Callable[[], Reply],
        to: str,
        lost: type[ChannelError] = Transient,
        *,
        expect: int = 250,
    ) -> None:
        """One step of the transaction to `to`; a refusal or a lost connection raises."""
        try:
            if conn.sock is None:
                raise smtplib.SMTPServerDisconnected("not connected")
            conn.sock.settimeout(deadline.left())
            code, reply = call()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            why = "timed out" if isinstance(exc, TimeoutError) else "connection lost"
            raise lost(f"{self._who()}: {why} at {stage} ({type(exc).__name__})") from exc
        if code == expect or (expect == 250 and 200 <= code < 300):  # e.g. 251 to RCPT TO
            return
        error = self._refusal(stage, code, self._quote(reply, to))
        if code == 421 or not 200 <= code < 600:  # closing, or out of step with us
            self._drop()
        else:
            self._reset(conn, deadline)
        raise error

    def _refusal(self, stage: str, code: int, reply: str) -> ChannelError:
        what = f"{self._who()}: {stage} answered {code} {reply}".rstrip()
        if 400 <= code < 500:
            return Transient(what)
        if not 500 <= code < 600:
            return DeliveryUnknown(what) if stage == END else Transient(what)
        if stage == MAIL_FROM:
            return SenderAtRisk(f"{what} (the server refuses this sender)")
        refused = _refused(stage, code, reply)
        if refused is SenderAtRisk:
            return SenderAtRisk(f"{what} (the server refuses this sender, not this contact)")
        return refused(what)

    def _reset(self, conn: smtplib.SMTP, deadline: _Deadline) -> None:
        """Abandon the refused transaction and keep the connection, or drop it."""
        try:
            if conn.sock is None:
                raise smtplib.SMTPServerDisconnected("not connected")
            conn.sock.settimeout(deadline.left())
            if conn.rset()[0] == 250:
                return
        except (smtplib.SMTPException, OSError):
            pass
        self._drop()

    def _connect(self, deadline: _Deadline) -> smtplib.SMTP:
        """A new connection, greeted, encrypted and logged in as configured."""
        self._drop()
        where = f"{self.host}:{self.port}"
        try:
            conn = self._open(deadline)
        except smtplib.SMTPResponseException as exc:
            raise self._refused_session(exc.smtp_code, exc.smtp_error) from None
        except ssl.SSLError as exc:
            if isinstance(exc, ssl.SSLCertVerificationError) or type(exc) is ssl.SSLError:
                raise SenderAtRisk(
                    f"{self._who()}: TLS with {where} failed ({exc.reason or exc}); "
                    "check config security, port and ca_file"
                ) from exc
            raise Transient(f"{self._who()}: TLS with {where} broke off") from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise Transient(f"{self._who()}: {where} hung up ({exc})") from exc
        except smtplib.SMTPException as exc:  # no STARTTLS, no AUTH or no mechanism we speak
            raise SenderAtRisk(f"{self._who()}: {where}: {str(exc).rstrip('.')}") from exc
        except OSError as exc:  # smtplib's errors are OSErrors too: they go first
            raise Transient(f"{self._who()}: cannot reach {where} ({type(exc).__name__})") from exc
        self._conn = conn
        return conn

    def _open(self, deadline: _Deadline) -> smtplib.SMTP:
        """Connected, greeted (smtplib raises `SMTPConnectError` for all but a 220), under TLS
        and logged in as configured."""
        if self.tls is not None:
            self.tls.deadline = deadline
        implicit = self.tls if self.security == "ssl" else None
        conn = _Client(deadline, implicit, host=self.host, port=self.port,
                       local_hostname=_ehlo_name())  # fmt: skip
        conn.set_debuglevel(0)  # its debug output would show the AUTH exchange
        try:
            self._ehlo(conn, deadline)
            if self.security == "starttls":
                assert conn.sock is not None
                conn.sock.settimeout(deadline.left())
                conn.starttls(context=self.tls)
                self._ehlo(conn, deadline)
            if self.credentials is not None:
                assert conn.sock is not None
                conn.sock.settimeout(deadline.left())
                conn.login(*self.credentials)
        except BaseException:
            conn.close()
            raise
        return conn

    def _ehlo(self, conn: smtplib.SMTP, deadline: _Deadline) -> None:
        assert conn.sock is not None
        conn.sock.settimeout(deadline.left())
        _expect(conn.ehlo(), 250)

    def _refused_session(self, code: int, reply: bytes | str) -> ChannelError:
        """A refusal before any mail: the greeting, EHLO, STARTTLS or AUTH."""
        what = f"{self._who()}: {self.host}:{self.port} answered {code} {self._quote(reply)}"
        if 400 <= code < 500:
            return Transient(what.rstrip())
        if code == 535:
            return SenderAtRisk(f"{what.rstrip()} (the username or password is refused)")
        return SenderAtRisk(what.rstrip())

    def _quote(self, reply: bytes | str, to: str | None = None) -> str:
        """A server reply for an error message: one line, no secret, no recipient."""
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        text = " ".join(reply.split())[:200]
        if to:
            text = re.sub(re.escape(to), "<recipient>", text, flags=re.IGNORECASE)
        return self.redact(text)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _who(self) -> str:
        return f"smtp account {self.account!r}"


def _refused(stage: str, code: int, reply: str) -> type[ChannelError]:
    """Whose problem a 5xx after MAIL FROM is (the module docstring's table), by its enhanced
    code when it has one: the basic code alone cannot tell "no such mailbox" from "relaying
    denied", both are often 550."""
    found = ENHANCED.match(reply)
    enhanced = (int(found[1]), int(found[2])) if found else None
    if stage != RCPT_TO:
        sender_auth = enhanced is not None and enhanced[0] == 7 and enhanced[1] in SENDER_AUTH
        return SenderAtRisk if sender_auth else ChannelError
    if enhanced is None:
        return RecipientUnreachable if code in NO_MAILBOX else ChannelError
    if enhanced[0] == 7 or enhanced in BAD_SENDER:
        return SenderAtRisk
    if enhanced[0] == 1 or enhanced == (2, 1):
        return RecipientUnreachable
    return ChannelError


def _write(conn: smtplib.SMTP, payload: bytes) -> Reply:
    """Write the message and its end-of-data line (a line's leading dot doubled, RFC 5321
    4.5.2); answers (250, b"") like a command once all of it is written."""
    quoted = re.sub(rb"(?m)^\.", b"..", payload)
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    conn.send(quoted + b".\r\n")
    return 250, b""


def _expect(reply: Reply, code: int) -> None:
    if reply[0] != code:
        raise smtplib.SMTPResponseException(*reply)


@cache
def _ehlo_name() -> str:
    """Our name in EHLO: the host name when it is a full one, else an address literal (as
    smtplib would say, but without its DNS lookup, which no timeout bounds)."""
    name = socket.gethostname()
    return name if "." in name else "[127.0.0.1]"


def _host(account: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise UserError(f"account {account!r}: config host must be a host name, got {value!r}")
    return value.strip()


def _port(account: str, value: object) -> int:
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise UserError(
            f"account {account!r}: config port must be a number from 1 to 65535 (587 for "
            f"STARTTLS, 465 for SSL), got {value!r}"
        )
    return port


def _security(account: str, value: object, port: int) -> str:
    if value is None:
        return "ssl" if port == 465 else "starttls"
    if value not in SECURITY:
        raise UserError(
            f"account {account!r}: config security must be one of {', '.join(SECURITY)}, "
            f"got {value!r}"
        )
    return str(value)


def _credentials(account: str, config: Mapping[str, Any]) -> tuple[str, str] | None:
    """(username, password) for AUTH, or None to send without logging in."""
    given = {key: config.get(key) for key in ("username", "password")}
    if not any(given.values()):
        return None
    for key, value in given.items():
        if not isinstance(value, str) or not value:
            raise UserError(
                f"account {account!r}: config username and password go together: set {key} too"
            )
        if not value.isascii():  # smtplib sends AUTH in ASCII only
            raise UserError(f"account {account!r}: config {key} must be ASCII for SMTP AUTH")
    return str(given["username"]), str(given["password"])


def _tls_context(account: str, security: str, ca_file: object) -> _TLS | None:
    """Certificates and host names verified (as `ssl.create_default_context`), against
    `ca_file` when one is given, else the system's CAs."""
    if security == "none":
        if ca_file is not None:
            raise UserError(f"account {account!r}: config ca_file needs security=starttls or ssl")
        return None
    context = _TLS(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is None:
        context.load_default_certs()
        return context
    if not isinstance(ca_file, str) or not Path(ca_file).is_file():
        raise UserError(f"account {account!r}: config ca_file {ca_file!r} is not a file")
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise UserError(
            f"account {account!r}: config ca_file {ca_file!r} holds no PEM certificate ({exc})"
        ) from None
    return context
