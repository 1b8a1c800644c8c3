"""BM25 retrieval over the knowledge entries, with a confidence in [0, 1] per hit.

Each entry is indexed as its heading (repeated `HEADING_WEIGHT` times: the heading names the
question the entry answers) followed by its body, tokenised by `tokens.tokenize`. Ranking is
rank-bm25's `BM25Okapi` with Lucene's idf (see `idf`).

Confidence. A raw BM25 score grows with the length of the question, so one threshold cannot
serve both `多少钱` and a three-clause question. The score is divided by a ceiling: what the
question would score against an average-length entry whose heading holds every one of its
tokens, `sum(idf(t) * (k1 + 1) * h / (h + k1))` with `h` the heading weight, and capped at 1.
A word the knowledge has never seen counts in that sum at the weight of the rarest known word
(`idf` of a word in one entry), times `Tuning.unknown_weight`: `T恤多少钱` scores well under
`学费多少钱`, because half of what it asks about is nowhere in the knowledge. The result reads
as "how much of what the question asks about this entry covers, and how prominently"; it is 0
for a question with no known token. The threshold that separates answers from handoffs is
calibrated by `bench/calibrate_replies.py`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rank_bm25 import BM25Okapi

from worker.replies.knowledge import FileWatch, Knowledge, KnowledgeError, read_text
from worker.replies.model import Entry, Hit
from worker.replies.tokens import Synonyms, parse_synonyms, tokenize

HEADING_WEIGHT = 2


def idf(entries: int, with_word: int) -> float:
    """Lucene's BM25 idf, which stays positive. Okapi's, `log((N - n + 0.5) / (n + 0.5))`, is
    zero or negative for a word in half the entries or more: in a knowledge base of a few
    entries that is most words (with two entries, every word), and nothing could be found."""
    return math.log(1 + (entries - with_word + 0.5) / (with_word + 0.5))


class _BM25(BM25Okapi):
    """rank-bm25's Okapi BM25 scoring with `idf` above (`_calc_idf` is its hook for this)."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, with_word in nd.items():
            self.idf[word] = idf(self.corpus_size, with_word)


@dataclass(frozen=True)
class Tuning:
    """The retrieval knobs, measured with `bench/calibrate_replies.py`."""

    k1: float = 1.5
    b: float = 0.75
    heading_weight: int = HEADING_WEIGHT
    unknown_weight: float = 1.0  # an unseen word, as a share of the rarest known word's idf
    # ... and an unseen word in Latin letters: the knowledge is written in Chinese, so an
    # English word missing from the synonym table is as often a question word the table lacks
    # (`which`, `accept`) as a subject the knowledge lacks.
    unknown_weight_latin: float = 0.5


class Index:
    """A BM25 index of a fixed set of entries."""

    def __init__(self, entries: Sequence[Entry], synonyms: Synonyms, tuning: Tuning) -> None:
        self.entries = tuple(entries)
        self.synonyms = synonyms
        self.tuning = tuning
        corpus = [self._document(e) for e in self.entries]
        self._bm25 = _BM25(corpus, k1=tuning.k1, b=tuning.b) if corpus else None
        self._idf: dict[str, float] = dict(self._bm25.idf) if self._bm25 else {}
        self._rarest_idf = idf(len(corpus), 1)

    def _document(self, entry: Entry) -> list[str]:
        heading = tokenize(entry.topic, self.synonyms)
        return heading * self.tuning.heading_weight + tokenize(entry.body, self.synonyms)

    def search(self, text: str, k: int = 3) -> list[Hit]:
        """The `k` best entries for `text` with a score above 0, best first."""
        query = tokenize(text, self.synonyms)
        if self._bm25 is None or not query:
            return []
        ceiling = sum(self._ceiling(token) for token in query)
        scores = self._bm25.get_scores(query)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [
            Hit(entry=self.entries[i], score=min(1.0, float(scores[i]) / ceiling))
            for i in ranked
            if scores[i] > 0
        ]

    def _ceiling(self, token: str) -> float:
        idf = self._idf.get(token)
        if idf is None:
            latin = token.isascii()
            weight = self.tuning.unknown_weight_latin if latin else self.tuning.unknown_weight
            idf = self._rarest_idf * weight
        h, k1 = self.tuning.heading_weight, self.tuning.k1
        return max(idf, 0.0) * (k1 + 1) * h / (h + k1)


class Retriever:
    """Searches the knowledge as it is on disk now: the index is rebuilt when an entry or the
    synonym table changed (both are checked on every search, see `knowledge.FileWatch`). A
    knowledge or synonym file that cannot be read raises `KnowledgeError` until it is fixed."""

    def __init__(
        self, knowledge: Knowledge, synonyms_path: Path | None = None, tuning: Tuning = Tuning()
    ) -> None:
        self.knowledge = knowledge
        self.synonyms_path = synonyms_path
        self.tuning = tuning
        self._synonym_watch = FileWatch(self._synonym_files)
        self._synonyms = Synonyms()
        self._index: Index | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_templates(cls, templates_dir: Path, tuning: Tuning = Tuning()) -> Retriever:
        """The retriever of `templates/replies/`: `knowledge/*.md` and `synonyms.txt`."""
        replies = templates_dir / "replies"
        return cls(Knowledge(replies / "knowledge"), replies / "synonyms.txt", tuning)

    def _synonym_files(self) -> list[Path]:
        path = self.synonyms_path
        return [path] if path is not None and path.is_file() else []

    def index(self) -> Index:
        """The index of the knowledge as it is now."""
        entries = self.knowledge.entries()
        with self._lock:
            if self._synonym_watch.changed():
                files = self._synonym_files()
                try:
                    self._synonyms = parse_synonyms(read_text(files[0])) if files else Synonyms()
                except KnowledgeError:
                    self._synonym_watch = FileWatch(self._synonym_files)  # fail until fixed
                    raise
                self._index = None
            if self._index is None or self._index.entries is not entries:
                self._index = Index(entries, self._synonyms, self.tuning)
            return self._index

    def search(self, text: str, k: int = 3) -> list[Hit]:
        return self.index().search(text, k)
