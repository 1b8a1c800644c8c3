"""Text normalisation shared by the classifier and the retriever.

Learners type on phones: full-width letters (`ＴＤ`), mixed case, punctuation and emoji around
the words that matter. Everything that compares text first goes through `normalise` (NFKC,
which folds width, then casefold) and, for whole-message rules, `compact`, which also drops
whitespace, punctuation, symbols and emoji.
"""

from __future__ import annotations

import re
import unicodedata

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
# Letters (L*), digits and other numbers (N*) survive `compact`; marks, punctuation,
# symbols (emoji are So), separators and control characters do not.
_KEPT_CATEGORIES = ("L", "N")


def normalise(text: str) -> str:
    """NFKC (full-width `ＴＤ` -> `TD`, `１００` -> `100`) and casefold, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


def compact(text: str) -> str:
    """`normalise`, then only letters and digits: `"退订。"` -> `"退订"`, `"T D!"` -> `"td"`."""
    return "".join(ch for ch in normalise(text) if unicodedata.category(ch)[0] in _KEPT_CATEGORIES)


def is_english(text: str) -> bool:
    """True for a message written in Latin letters with no Chinese: canned replies answer in
    English then. Anything with a Chinese character is answered in Chinese."""
    return not _HAN.search(text) and bool(_LATIN.search(text))
