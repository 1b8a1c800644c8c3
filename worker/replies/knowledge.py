"""The course knowledge: `templates/replies/knowledge/*.md`, one `Entry` per `## ` section.

An operator who corrects a wrong answer must see the correction in the very next reply, with
no restart: `Knowledge.entries()` looks at the files on every call (one `stat` each) and
reloads when any was added, removed or changed. A file rewritten within the file system's
timestamp granularity and with the same size keeps its (mtime, size); git calls this "racily
clean". So, like git, while any file's mtime is too close to the moment it was read for the
stat to be trusted, the contents themselves are compared (a digest over the bytes).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.replies.model import Entry

HEADING = "## "
# Coarser than any file system siyu runs on (ext4/xfs/apfs: ns; HFS+: 1 s; FAT: 2 s).
RACY_WINDOW_NS = 2_000_000_000


class KnowledgeError(ValueError):
    """A knowledge file that cannot be read, named with what is wrong with it."""


def parse_entries(text: str, name: str) -> list[Entry]:
    """The `## ` sections of one markdown file. Text before the first `## ` (a `# ` title, a
    note for operators) is not an entry, nor is a heading with nothing under it; `###` and
    deeper headings are part of the body they sit in. `name` is the file name for `source`."""
    entries: list[Entry] = []
    topic: str | None = None
    line_no = 0
    body: list[str] = []

    def close() -> None:
        text = "\n".join(body).strip()
        if topic and text:
            entries.append(Entry(topic=topic, body=text, source=f"knowledge/{name}:{line_no}"))

    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(HEADING):
            close()
            topic, line_no, body = line[len(HEADING) :].strip(), number, []
        elif topic is not None:
            body.append(line.rstrip())
    close()
    return entries


def read_text(path: Path) -> str:
    """A knowledge file's text: UTF-8 with or without a BOM, or a `KnowledgeError`."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise KnowledgeError(f"{path}: cannot be read ({exc.strerror})") from exc


def load_entries(directory: Path) -> tuple[Entry, ...]:
    """Every entry of `directory/*.md`, files in name order, sections in file order."""
    entries: list[Entry] = []
    for path in markdown_files(directory):
        entries.extend(parse_entries(read_text(path), path.name))
    return tuple(entries)


def markdown_files(directory: Path) -> list[Path]:
    """The knowledge files, sorted by name; none if the directory does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.md") if p.is_file())


@dataclass(frozen=True, slots=True)
class _Seen:
    stats: tuple[tuple[str, int, int, int], ...]  # (name, mtime_ns, size, inode) per file
    digest: bytes
    checked_ns: int  # wall clock when the stats and digest were taken


class FileWatch:
    """Tells whether a set of files changed since the last look (see the module docstring)."""

    def __init__(self, list_files: Callable[[], Sequence[Path]]) -> None:
        self._list_files = list_files
        self._seen: _Seen | None = None

    def changed(self) -> bool:
        """True on the first call and whenever a file was added, removed or modified."""
        now = time.time_ns()
        paths = self._list_files()
        stats = tuple(_stat(p) for p in paths)
        seen = self._seen
        if seen is not None and stats == seen.stats and not _racy(seen):
            return False
        digest = _digest(paths)
        self._seen = _Seen(stats, digest, now)
        return seen is None or digest != seen.digest


def _stat(path: Path) -> tuple[str, int, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:  # removed between the listing and the stat
        return (path.name, -1, -1, -1)
    return (path.name, st.st_mtime_ns, st.st_size, st.st_ino)


def _racy(seen: _Seen) -> bool:
    """Could a file have changed without its stat changing? Only if its mtime was within the
    timestamp granularity of the moment it was last checked."""
    return any(mtime >= seen.checked_ns - RACY_WINDOW_NS for _, mtime, _, _ in seen.stats)


def _digest(paths: Sequence[Path]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        h.update(path.name.encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except FileNotFoundError:
            h.update(b"\0missing")
        h.update(b"\0")
    return h.digest()


class Knowledge:
    """The entries of one knowledge directory, reloaded when its files change.

    `entries()` returns the same tuple object while nothing changed, so a caller can rebuild
    what it derives from them (the retrieval index) only when the identity changes. A reload
    that fails (a file that is not UTF-8) raises `KnowledgeError`, and so does every call until
    the files are fixed: an answer is never given from knowledge the operator has replaced.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._watch = FileWatch(lambda: markdown_files(directory))
        self._entries: tuple[Entry, ...] = ()
        self._lock = threading.Lock()

    def entries(self) -> tuple[Entry, ...]:
        with self._lock:
            if self._watch.changed():
                try:
                    self._entries = load_entries(self.directory)
                except KnowledgeError:
                    self._watch = FileWatch(lambda: markdown_files(self.directory))
                    raise
            return self._entries
