"""Tokens for retrieval: jieba words for Chinese, lowercase words and numbers for the rest,
stop words dropped, synonyms folded onto one word (`多少钱`, `学费`, `price` -> `价格`).

jieba is built once per process from the dictionary inside its wheel, without its cache: its
cache file lives in the temp directory, so building it there fails on a read-only or tmp-less
host, and loading it saves nothing measurable (both take about a second). Its log chatter on
stderr is silenced through its logger.

The synonym table is operator data, `templates/replies/synonyms.txt` (see `parse_synonyms`),
because the words learners use for a topic are the operator's knowledge, not the code's.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from worker.replies.text import normalise

with warnings.catch_warnings():  # older setuptools warn that jieba's pkg_resources is deprecated
    warnings.simplefilter("ignore")
    import jieba

logging.getLogger("jieba").setLevel(logging.WARNING)

# Function words, which say nothing about which entry answers a question, and the question
# words that only say that something is asked (哪里, 谁, 多少). Question words that say what
# is asked (什么时候 -> 日期, 多少钱 -> 价格, how much) are mapped by the synonym table instead.
_STOP_WORDS_TEXT = """
    的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 嗯 哇 噢 喔 着 过 得 地 之 与 及 和 或 跟 同 而
    是 有 在 也 都 就 还 又 再 才 很 太 更 最 挺 蛮 好 吧 把 被 让 给 对 向 从 到 为 于 以 等
    我 你 您 他 她 它 我们 你们 他们 咱们 大家 自己 这 那 这个 那个 这些 那些 这边 那边 这门
    请 请问 问 问下 问一下 想问 想 要 需要 能 会 可以 可不可以 能不能 能否 是否 是不是
    一下 一个 个 一 下 些 点 里 上 中 呢 么 怎么 怎样 怎么样 如何 什么 啥 哪 哪个 哪些 为什么
    没 没有 有没有 不 不是 吗 嘛 谢谢 你好 您好 老师好 亲 麻烦 帮 帮忙 帮我 告诉 知道 一般
    哪里 哪儿 在哪 在哪里 在哪儿 谁 多少
    a an the is are am was were be been do does did i you we they he she it my your our me
    us to of for on in at by with from about and or if so this that these those there here
    what whats how can could would will should may might please pls hi hello thanks any
    get have has had there's it's i'm im don't dont not no yes just also then than
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[\u3400-\u9fff]|[a-z0-9]")
_LONE_LETTER = re.compile(r"[a-z]")  # the `s` of `what's`, the `i` of `i'm`
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Synonyms:
    """Words mapped onto one canonical word, and multi-word phrases (`how much`) likewise."""

    words: Mapping[str, str] = field(default_factory=dict)
    phrases: tuple[tuple[re.Pattern[str], str], ...] = ()

    def canonical(self, token: str) -> str:
        found = self.words.get(token)
        if found is None and len(token) > 3 and token.endswith("s"):
            found = self.words.get(token[:-1])  # English plurals: classes, recordings
        return found or token


def parse_synonyms(text: str) -> Synonyms:
    """One group per line, words separated by spaces, the first word canonical; `#` starts a
    comment; an English phrase joins its words with `_` (`how_much`). Words are normalised
    like the text they are compared with (width, case), and jieba learns the Chinese ones
    (`teach`), so `多少钱` stays one token."""
    words: dict[str, str] = {}
    phrases: list[tuple[re.Pattern[str], str]] = []
    for line in text.splitlines():
        group = [normalise(w) for w in line.split("#", 1)[0].split()]
        if not group:
            continue
        canonical = group[0]
        for word in group:
            if "_" in word:
                pattern = r"\b" + r"\s+".join(map(re.escape, word.split("_"))) + r"\b"
                phrases.append((re.compile(pattern, re.IGNORECASE), f" {canonical} "))
            else:
                words[word] = canonical
    teach(words)
    return Synonyms(words=words, phrases=tuple(phrases))


@lru_cache(maxsize=1)
def _tokenizer() -> jieba.Tokenizer:
    """jieba's prefix dictionary built in memory from the wheel's dict.txt (no cache file)."""
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(tokenizer.get_dict_file())
    tokenizer.initialized = True
    return tokenizer


def teach(words: Iterable[str]) -> None:
    """Make jieba keep these words whole (the synonym table's, so `多少钱` is one token and
    not `多少` + `钱`). jieba's dictionary only grows; a word later removed from the table
    stays a word, harmlessly."""
    tokenizer = _tokenizer()
    with _LOCK:
        for word in words:
            if len(word) > 1 and not word.isascii() and tokenizer.lcut(word, HMM=False) != [word]:
                tokenizer.suggest_freq(word, tune=True)


def tokenize(text: str, synonyms: Synonyms) -> list[str]:
    """The retrieval tokens of `text`, in order, repeats kept (BM25 counts them). jieba sees
    the text before casefolding: its dictionary knows `T恤`, not `t恤`."""
    text = unicodedata.normalize("NFKC", text)
    for pattern, canonical in synonyms.phrases:
        text = pattern.sub(canonical, text)
    tokens = []
    for raw in _tokenizer().lcut(text):
        word = raw.strip().casefold()
        if not _WORD.search(word) or _LONE_LETTER.fullmatch(word):
            continue
        word = synonyms.canonical(word)
        if word not in STOP_WORDS:
            tokens.append(word)
    return tokens
