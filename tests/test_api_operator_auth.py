"""Every operator route needs the bearer token (or, without one, this host), and the OpenAPI
document describes every one of them.

The route list comes from the app itself: a route added later without the auth dependency
fails here. Runs on SQLite and PostgreSQL with real Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.support.operator import (
    ELSEWHERE,
    LOOPBACK,
    TOKEN,
    Api,
    error_of,
    operator_api,
    operator_routes,
    response_model_of,
)
from tests.support.world import make_context
from worker.api.operator import __doc__ as ROUTES_DOC

FILLED = re.compile(r"\{[^}]+\}")


def request(client: Any, method: str, path: str) -> Any:
    """The route called with placeholder path parameters and no body."""
    return client.request(method, FILLED.sub("nobody", path))


@pytest.fixture
def tokenless(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Api]:
    """An API with no SIYU_API_TOKEN: this host only."""
    ctx = make_context(db_url, redis_url, tmp_path)
    yield operator_api(ctx)
    ctx.engine.dispose()


def documented_routes() -> list[tuple[str, str]]:
    """(method, path) of each route line of `api.operator`'s docstring; `a|b` expanded."""
    found = []
    for method, spelled in re.findall(
        r"^\s+(GET|POST|PATCH|DELETE)\s+(\S+)", ROUTES_DOC or "", re.M
    ):
        head, _, last = spelled.partition("?")[0].rpartition("/")
        found += [(method, f"{head}/{leaf}") for leaf in last.split("|")]
    return sorted(found)


def test_the_app_serves_exactly_the_operator_routes_its_docstring_lists(api: Api) -> None:
    assert operator_routes(api.app) == documented_routes()
    assert len(documented_routes()) == 31


def test_every_operator_route_refuses_a_request_without_the_token(api: Api) -> None:
    anonymous = api.client(token=None)
    for method, path in operator_routes(api.app):
        response = request(anonymous, method, path)
        message = error_of(response, 401)
        assert "needs Authorization: Bearer <SIYU_API_TOKEN>" in message, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"


def test_every_operator_route_refuses_a_wrong_token_even_from_this_host(api: Api) -> None:
    wrong = api.client(LOOPBACK, token=TOKEN[:-1] + "x")
    for method, path in operator_routes(api.app):
        error_of(request(wrong, method, path), 401)


def test_with_the_token_every_operator_route_answers_from_anywhere(api: Api) -> None:
    """Past the check, each route does its work: here a placeholder name is not found (404)
    or a missing body is named (422); never a refusal of the caller, never a 500."""
    client = api.client(ELSEWHERE)
    for method, path in operator_routes(api.app):
        response = request(client, method, path)
        assert response.status_code not in (401, 403), (method, path, response.text)
        assert response.status_code < 500, (method, path, response.text)


def test_without_a_token_other_hosts_are_refused_and_this_host_is_served(tokenless: Api) -> None:
    outside, local = tokenless.client(ELSEWHERE, None), tokenless.client(LOOPBACK, None)
    for method, path in operator_routes(tokenless.app):
        message = error_of(request(outside, method, path), 403)
        assert "from another host needs SIYU_API_TOKEN" in message, (method, path)
        assert request(local, method, path).status_code not in (401, 403), (method, path)


def test_the_routes_that_are_not_the_operators_keep_working_without_a_token(api: Api) -> None:
    outside = api.client(ELSEWHERE, token=None)
    assert outside.get("/healthz").json() == {"ok": True}
    inbound = outside.post("/v1/inbound/mock", content=b"{}")
    assert inbound.status_code == 503, "refused for the missing webhook secret, not the token"
    assert outside.get("/u/not-a-token").status_code == 404


def test_the_openapi_document_describes_every_operator_route_and_its_models(api: Api) -> None:
    """The document is a valid OpenAPI 3 spec (openapi-spec-validator), and it describes
    every operator route with its token, its error body and its response model."""
    spec = api.app.openapi()
    validate(spec)  # raises, naming the part of the document at fault
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer", **_desc(schemes)}}
    schemas = spec["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', _dump(spec)))
    assert refs <= set(schemas), "every reference resolves"
    for method, path in operator_routes(api.app):
        operation = spec["paths"][path][method.lower()]
        assert operation["tags"] and operation["security"] == [{"HTTPBearer": []}], path
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        model, status = response_model_of(api.app, method, path)
        if model is not None:
            shown = _dump(operation["responses"][str(status)])
            assert f"/{_model_name(model)}" in shown, (method, path)


def _desc(schemes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schemes["HTTPBearer"].items() if k == "description"}


def _dump(value: Any) -> str:
    import json

    return json.dumps(value)


def _model_name(model: Any) -> str:
    inner = getattr(model, "__args__", None)
    return str((inner[0] if inner else model).__name__)
