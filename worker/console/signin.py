"""Sign-in with the API token, sign-out, and the language switch.

GET  /signin     the form (without a token configured: straight to the dashboard)
POST /signin     check the token; a wrong one shows the form again (401)
POST /signout    end the session
GET  /lang/{zh|en}   remember a language in a cookie, back to where one was
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from worker.console.i18n import COOKIE, LANGUAGES
from worker.console.session import needs_sign_in, sign_in
from worker.console.web import Console, back_to, check_csrf, route_class

LANG_COOKIE_MAX_AGE_S = 365 * 86400


def local_path(target: str | None) -> str:
    """`target` if it is a path on this site, else `/` (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def router(console: Console) -> APIRouter:
    routes = APIRouter(route_class=route_class(console))

    @routes.get("/signin", response_class=HTMLResponse)
    def form(request: Request, next: str | None = None) -> Response:
        if not needs_sign_in(console.context().settings):
            return back_to(local_path(next))
        return console.render(request, "signin.html", next=local_path(next), error=None)

    @routes.post("/signin", response_class=HTMLResponse)
    async def submit(
        request: Request,
        token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        await check_csrf(console, request)
        settings = console.context().settings
        if not needs_sign_in(settings):
            return back_to(local_path(next))
        if not sign_in(settings, request, token):
            _ = console.gettext(request)
            error = _("That is not the token. Ask whoever runs siyu for SIYU_API_TOKEN.")
            return console.render(request, "signin.html", 401, next=local_path(next), error=error)
        return back_to(local_path(next))

    @routes.post("/signout")
    async def sign_out(request: Request) -> Response:
        await check_csrf(console, request)
        request.session.clear()
        return back_to("/signin")

    @routes.get("/lang/{lang}")
    def language(lang: str, next: str | None = None) -> Response:
        response = back_to(local_path(next))
        if lang in LANGUAGES:
            response.set_cookie(
                COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, httponly=True, samesite="lax"
            )
        return response

    return routes
