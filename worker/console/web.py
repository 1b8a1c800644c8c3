"""What every console page shares: templates per language, the guard, flashes, error pages.

A page handler raises; it never builds an error response itself. `ConsoleRoute` turns a
`UserError` from the service layer into a page in the person's language that quotes the
CLI's message (400, or 404 for `NotFound`, 503 for `ServiceUnavailable`), and the guard's
refusals into the sign-in redirect or a 403 page. No traceback reaches a page.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from worker.campaigns.timeparse import local_text, zone
from worker.console.i18n import COOKIE, LANGUAGES, choose_language, load_translations
from worker.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_ok,
    csrf_token,
    needs_sign_in,
    signed_in,
)
from worker.console.words import word, words
from worker.errors import NotFound, ServiceUnavailable, UserError
from worker.runtime import Context

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class Refusal(Exception):
    """A request the console turns away, with a page saying why (already translated)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class SignInFirst(Exception):
    """Not signed in: pages redirect to the sign-in form."""


@dataclass
class Console:
    """The console's process-wide parts: the context, and a template environment per language."""

    context: Callable[[], Context]
    envs: dict[str, jinja2.Environment]
    translations: dict[str, gettext.GNUTranslations]

    @classmethod
    def build(cls, context: Callable[[], Context]) -> Console:
        translations = {lang: load_translations(lang) for lang in LANGUAGES}
        envs = {lang: _environment(t) for lang, t in translations.items()}
        return cls(context, envs, translations)

    def lang(self, request: Request) -> str:
        return choose_language(request.cookies.get(COOKIE), request.headers.get("accept-language"))

    def gettext(self, request: Request) -> Callable[[str], str]:
        return self.translations[self.lang(request)].gettext

    def render(
        self, request: Request, name: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        """`templates/<name>` in the person's language, with what every page needs."""
        lang = self.lang(request)
        settings = self.context().settings
        page = (
            self.envs[lang]
            .get_template(name)
            .render(
                request=request,
                lang=lang,
                csrf=csrf_token(request),
                signed_in=needs_sign_in(settings) and request.session.get("signed_in") is True,
                flashes=request.session.pop("flashes", []),
                **values,
            )
        )
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Language, Cookie"}
        return HTMLResponse(page, status_code=status_code, headers=headers)


def _environment(translations: gettext.GNUTranslations) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = lambda value, tz: local_text(value, zone(tz)) if value else ""
    table = words(translations.gettext)
    env.globals["w"] = lambda code: word(table, code)  # a status code in the reader's words
    env.filters["num"] = lambda value: f"{int(value):,}"
    env.filters["pct"] = lambda part, whole: round(100 * part / whole) if whole else 0
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    return env


def flash(request: Request, kind: str, text: str) -> None:
    """A message for the next page this session sees (after a redirect)."""
    request.session["flashes"] = [*request.session.get("flashes", []), [kind, text]]


def back_to(path: str) -> RedirectResponse:
    """After a POST: the page to show, fetched anew (303: a reload does not post again)."""
    return RedirectResponse(path, status_code=303)


def guard_for(console: Console) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """The dependency of every console page but sign-in: who may use it, and CSRF on POST."""

    async def guard(request: Request) -> None:
        _ = console.gettext(request)
        settings = console.context().settings
        if not needs_sign_in(settings) and not signed_in(settings, request):
            raise Refusal(
                403,
                _("Not from this computer"),
                _(
                    "Without SIYU_API_TOKEN the console only answers this computer. "
                    "Set SIYU_API_TOKEN to use it from elsewhere."
                ),
            )
        if not signed_in(settings, request):
            raise SignInFirst()
        if request.method == "POST":
            await check_csrf(console, request)

    return guard


async def check_csrf(console: Console, request: Request) -> None:
    """Refuse a POST whose CSRF token (form field or htmx header) is not this session's."""
    given = request.headers.get(CSRF_HEADER)
    if not given:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not csrf_ok(request, given):
        _ = console.gettext(request)
        raise Refusal(
            403,
            _("This form has expired"),
            _(
                "The form did not carry this session's security token (CSRF), so nothing was "
                "changed. Reload the page and try again."
            ),
        )


def route_class(console: Console) -> type[APIRoute]:
    """An APIRoute whose handler shows the console's error pages instead of raising."""

    class ConsoleRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except SignInFirst:
                    return _to_sign_in(request)
                except Refusal as exc:
                    return error_page(console, request, exc.status, exc.title, exc.message)
                except UserError as exc:
                    return service_error(console, request, exc)

            return handle

    return ConsoleRoute


def service_error(console: Console, request: Request, exc: UserError) -> HTMLResponse:
    """The CLI's message for a refusal of the service layer, on a page in our language."""
    _ = console.gettext(request)
    if isinstance(exc, NotFound):
        return error_page(console, request, 404, _("Not found"), str(exc))
    if isinstance(exc, ServiceUnavailable):
        return error_page(console, request, 503, _("A service is unavailable"), str(exc))
    return error_page(console, request, 400, _("That could not be done"), str(exc))


def error_page(
    console: Console, request: Request, status: int, title: str, message: str
) -> HTMLResponse:
    return console.render(request, "error.html", status, title=title, message=message)


def _to_sign_in(request: Request) -> Response:
    target = "/signin?next=" + quote(request.url.path, safe="/")
    if request.headers.get("hx-request"):  # htmx: the whole page goes, not a fragment
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
