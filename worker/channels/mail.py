"""What the `smtp` channel sends: e-mail addresses checked, and one message built per send.

Kept apart from the SMTP conversation (`smtp.py`) so the message's rules read in one place:
its headers (RFC 5322, RFC 2369 and RFC 8058), the HTML rule and the plain text derived from
HTML with the standard library's parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from html.parser import HTMLParser
from urllib.parse import quote

from worker.channels.base import OutboundMessage

# SMTP line endings; every part 7-bit clean (base64 or quoted-printable where needed), so no
# server has to support 8BITMIME or SMTPUTF8.
POLICY = policy.SMTP.clone(cte_type="7bit")
# A reply to a learner has no campaign and so no subject of its own.
REPLY_SUBJECT = "Re: 您的消息"
# What an HTML message opens with, after a BOM and white space: a doctype, a comment, or a
# whole start tag (`>` included) of a common element; `<3` or `a<b` stay plain text.
HTML_ELEMENTS = (
    "html head body style meta title div p table center section article header footer main "
    "h1 h2 h3 h4 h5 h6 ul ol span a img br b strong em i font"
)
HTML_START = re.compile(
    rf"[\s\ufeff]*<(?:!doctype\s+html|!--|(?:{'|'.join(HTML_ELEMENTS.split())})(?:\s[^<>]*)?/?>)",
    re.IGNORECASE,
)
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True, slots=True)
class Sender:
    """The account's `from`: an address, with a display name or not."""

    name: str
    address: str
    domain: str


def parse_address(value: str) -> Address | None:
    """`value` as one ASCII addr-spec (`name@example.com`); None when it is not one."""
    try:
        address = Address(addr_spec=value.strip())
    except (ValueError, IndexError, MessageError):
        return None
    if not address.domain or not address.addr_spec.isascii():
        return None
    return address


def parse_sender(value: str) -> Sender | None:
    """`courses@example.com` or `思语课堂 <courses@example.com>`; None when it is neither."""
    header = policy.default.header_factory("From", value)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if header.defects or len(addresses) != 1:
        return None
    checked = parse_address(addresses[0].addr_spec)
    if checked is None:
        return None
    return Sender(addresses[0].display_name, checked.addr_spec, checked.domain)


def message_id(key: str, sender: Sender) -> str:
    """The same for every retry of one delivery (RFC 5322 3.6.4): a receiver sees a repeat."""
    return f"<{key}@{sender.domain}>"


def build(message: OutboundMessage, to: str, sender: Sender) -> EmailMessage:
    """The e-mail for `message` to the checked address `to`; see `smtp.py` for its headers."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = Address(sender.name, addr_spec=sender.address)
    mail["To"] = to
    mail["Subject"] = " ".join((message.subject or "").split()) or REPLY_SUBJECT
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message.idempotency_key, sender)
    if message.campaign is not None:
        _list_unsubscribe(mail, sender, message.unsubscribe_url)
    if is_html(message.text):
        html = message.text.removeprefix("\ufeff")  # an editor's BOM: no reader wants it
        mail.set_content(html_to_text(html))
        mail.add_alternative(html, subtype="html")
    else:
        mail.set_content(message.text)
    return mail


def _list_unsubscribe(mail: EmailMessage, sender: Sender, url: str | None) -> None:
    """RFC 2369's mailto link, and the web link when there is one; one-click (RFC 8058)
    only for an https link, the only kind that RFC allows it for."""
    links = [f"<mailto:{quote(sender.address, safe='@')}?subject=unsubscribe>"]
    if url:
        links.append(f"<{url}>")
    mail["List-Unsubscribe"] = ", ".join(links)
    if url and url.startswith("https://"):
        mail["List-Unsubscribe-Post"] = ONE_CLICK


def is_html(text: str) -> bool:
    """An HTML message opens like HTML (`HTML_START`): a document, or a fragment such as
    `<p>...</p>` that a mail reader would otherwise show with its tags."""
    return HTML_START.match(text) is not None


def html_to_text(document: str) -> str:
    """The readable text of an HTML message: blocks on their own lines, a link's address
    after its words, nothing of scripts, styles or the head."""
    parser = _TextOf()
    parser.feed(document)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _TextOf(HTMLParser):
    BLOCKS = frozenset(
        {"address", "article", "blockquote", "div", "footer", "h1", "h2", "h3", "h4", "h5",
         "h6", "header", "hr", "li", "ol", "p", "pre", "section", "table", "td", "th", "tr",
         "ul"}
    )  # fmt: skip
    HIDDEN = frozenset({"head", "script", "style", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.links: list[tuple[str | None, int]] = []  # (href, where its words start)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS and tag != "li":  # the next item's "\n- " ends an item
            self.parts.append("\n\n" if tag == "p" else "\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            words = " ".join("".join(self.parts[start:]).split())
            if href and href.startswith(("http://", "https://")) and href != words:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)
