"""`TemplateError`, and the translation of Jinja's exceptions into it with file and line.

Jinja rewrites the traceback of an error raised while rendering so that frames in compiled
template code carry the template's file name and source line; the innermost such frame is
where the template went wrong.
"""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path
from types import TracebackType

import jinja2
from jinja2.exceptions import SecurityError

from worker.errors import UserError

# Jinja names a custom class by its full dotted path in undefined-attribute messages.
_CONTACT_REPR = re.compile(r"'(?:\w+\.)*ContactView object'")


class TemplateError(UserError):
    """A template that cannot compile or render; `str(exc)` is one line with file and line.

    `kind` is one of: not_found, syntax, undefined, sandbox, runtime, url, length, variables.
    """

    def __init__(
        self, detail: str, *, kind: str, path: str | None = None, lineno: int | None = None
    ) -> None:
        self.detail = " ".join(part.strip() for part in detail.splitlines() if part.strip())
        self.kind = kind
        self.path = path
        self.lineno = lineno
        where = path or ""
        if path and lineno is not None:
            where = f"{path} line {lineno}"
        super().__init__(f"{where}: {self.detail}" if where else self.detail)


def display_path(root: Path, filename: str) -> str:
    """A template path relative to the templates dir's parent, e.g. `templates/x.j2`."""
    try:
        return Path(filename).relative_to(root.parent).as_posix()
    except ValueError:
        return filename


def from_syntax_error(exc: jinja2.TemplateSyntaxError, root: Path) -> TemplateError:
    """A compile error (syntax, unknown filter or test) at its file and line."""
    path = display_path(root, exc.filename) if exc.filename else exc.name
    return TemplateError(exc.message or str(exc), kind="syntax", path=path, lineno=exc.lineno)


def from_render_error(exc: Exception, root: Path) -> TemplateError:
    """Any exception raised while rendering, at the innermost template line that raised it."""
    if isinstance(exc, jinja2.TemplateSyntaxError):  # an included file that does not compile
        return from_syntax_error(exc, root)
    frames = _template_frames(exc.__traceback__, root)
    path, lineno = frames[-1] if frames else (None, None)
    kind, detail = _describe(exc)
    if frames and frames[0][0] != path:
        detail += f" (included from {frames[0][0]} line {frames[0][1]})"
    return TemplateError(detail, kind=kind, path=path, lineno=lineno)


def _describe(exc: Exception) -> tuple[str, str]:
    """The kind and a one-line description of an exception raised inside a template."""
    if isinstance(exc, TemplateError):
        return exc.kind, exc.detail
    if isinstance(exc, SecurityError):
        return "sandbox", f"blocked by the sandbox: {exc}"
    if isinstance(exc, jinja2.UndefinedError):
        return "undefined", _CONTACT_REPR.sub("contact", str(exc))
    if isinstance(exc, jinja2.TemplateNotFound):
        return "not_found", f"included template {exc.name!r} not found"
    if isinstance(exc, jinja2.TemplateError):
        return "runtime", str(exc)
    return "runtime", f"{type(exc).__name__}: {exc}"


def _template_frames(tb: TracebackType | None, root: Path) -> list[tuple[str, int]]:
    """(file, line) of each template frame, outermost first."""
    prefix = str(root) + os.sep
    return [
        (display_path(root, frame.f_code.co_filename), lineno)
        for frame, lineno in traceback.walk_tb(tb)
        if frame.f_code.co_filename.startswith(prefix)
    ]
