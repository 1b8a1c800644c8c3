"""The console's two languages: Simplified Chinese and English, from gettext catalogs.

The `.po` files under `locales/<lang>/LC_MESSAGES/console.po` are compiled in memory when
the console starts (Babel reads them, writes a `.mo` into a buffer, gettext loads that), so
there is no build step and no binary file in git. English msgids are the source text: the
English catalog may leave a msgstr empty, gettext then shows the msgid.

A person's language is the `siyu_lang` cookie if they chose one, else the best match of
their browser's `Accept-Language`, else Chinese (the operators' usual language).
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("zh", "en")
DEFAULT = "zh"
COOKIE = "siyu_lang"
DOMAIN = "console"


def load_translations(lang: str, directory: Path = LOCALES_DIR) -> gettext.GNUTranslations:
    """The catalog of `lang`, compiled from its `.po` file in memory."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown console language {lang!r}; known: {', '.join(LANGUAGES)}")
    po_path = directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as po:
        catalog = read_po(po, locale=Locale.parse(lang))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def parse_accept_language(header: str | None) -> list[str]:
    """The languages of an `Accept-Language` header, most wanted first (`q=0` dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, position, tag.replace("-", "_")))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it names one of ours, else the header's best match."""
    if cookie in LANGUAGES:
        return cookie
    found = negotiate_locale(parse_accept_language(accept_language), list(LANGUAGES))
    return found if found in LANGUAGES else DEFAULT
