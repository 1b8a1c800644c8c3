"""The Jinja2 environment: an immutable sandbox, strict undefined, one per templates dir.

Whitespace: `trim_blocks` and `lstrip_blocks` are on, so a line holding only a `{% ... %}`
tag or a comment leaves no blank line (a block tag at the end of a text line also eats that
line's newline: put such tags on their own line). `None` renders as an empty string, so
`{{ contact.attrs.get('city') }}` never prints "None". Trailing newlines are stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.rendering.errors import (
    TemplateError,
    display_path,
    from_render_error,
    from_syntax_error,
)

TEMPLATE_SUFFIX = ".j2"
REPLIES_DIR = "replies"
_MAX_LISTED = 10
_MAX_VERDICTS = 4096


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with its attribute verdicts memoised per (type, attribute).

    Jinja's checks (`is_internal_attribute`, `modifies_known_mutable`) look only at the
    object's type and the attribute name, so the verdict can be cached; computing it was
    about a third of the per-render cost.
    """

    _verdicts: ClassVar[dict[tuple[type, str], bool]] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[key] = super().is_safe_attribute(obj, attr, value)
        return verdict


def templates_root(templates_dir: Path) -> Path:
    """The absolute templates dir; template frames and messages are resolved against it."""
    return Path(templates_dir).expanduser().resolve()


@lru_cache(maxsize=32)
def environment(root: Path) -> jinja2.Environment:
    """One sandbox per templates dir; its cache recompiles a template whose file changed."""
    return _Sandbox(
        loader=jinja2.FileSystemLoader(root, encoding="utf-8-sig"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_blank_none,
    )


def _blank_none(value: object) -> object:
    return "" if value is None else value


def list_templates(templates_dir: Path) -> list[str]:
    """Message template names (without `.j2`), excluding the reply assistant's `replies/`."""
    root = templates_root(templates_dir)
    names = environment(root).list_templates(extensions=[TEMPLATE_SUFFIX[1:]])
    return [n.removesuffix(TEMPLATE_SUFFIX) for n in names if not n.startswith(f"{REPLIES_DIR}/")]


def load(root: Path, filename: str, *, shown: str) -> jinja2.Template:
    """Compile a template by file name, mapping every failure to a `TemplateError`."""
    try:
        return environment(root).get_template(filename)
    except jinja2.TemplateNotFound:
        raise _not_found(root, filename, shown) from None
    except jinja2.TemplateSyntaxError as exc:
        raise from_syntax_error(exc, root) from exc
    except UnicodeDecodeError as exc:
        path = display_path(root, str(root / filename))
        raise TemplateError(
            f"not valid UTF-8 (byte {exc.start})", kind="syntax", path=path
        ) from exc


def render(template: jinja2.Template, context: dict[str, object], root: Path) -> str:
    """Render with every failure as a `TemplateError` at its template line."""
    try:
        text = template.render(context)
    except Exception as exc:  # anything a template does wrong is the template's error
        raise from_render_error(exc, root) from exc
    return text.rstrip("\n")


def render_file(templates_dir: Path, path: str, context: Mapping[str, object]) -> str:
    """Render any file under the templates dir (e.g. `replies/persona.j2`) in the sandbox."""
    root = templates_root(templates_dir)
    return render(load(root, path, shown=path), dict(context), root)


def _not_found(root: Path, filename: str, shown: str) -> TemplateError:
    message = f"template {shown!r} not found: expected {display_path(root, str(root / filename))}"
    if not root.is_dir():
        message += f" (the templates directory {root} does not exist)"
    elif names := list_templates(root):
        listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
        message += f" (available: {listed})"
    return TemplateError(message, kind="not_found")
