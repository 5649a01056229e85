"""Every route of the app is gated by its scope: found by walking the app, not listed by hand.

A route's scope is read from its ``require(scope)`` dependency, so a route
added later is covered without touching this file; the routes without one
must be exactly the public set below.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from tenure.api import create_app
from tenure.govern.keys import ROLE_SCOPES, Role, Scope, create_key, revoke_key
from tenure.project import Project
from tests.serve._live import running

#: Routes anyone may call: probes, the API's own documentation, one-click
#: unsubscribe (the token is the credential) and Stripe (signed requests).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/unsubscribe/{token}",
    "/v1/webhooks/stripe",
}


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    scopes: frozenset[Scope]

    def url(self) -> str:
        # "1" fits both str and int path parameters
        return re.sub(r"\{[^}]+\}", "1", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _scopes(dependant: Dependant) -> Iterator[Scope]:
    for sub in dependant.dependencies:
        scope = getattr(sub.call, "scope", None)
        if isinstance(scope, Scope):
            yield scope
        yield from _scopes(sub)


def app_routes(app: FastAPI) -> list[_Route]:
    """Every method of every route, with the scopes its dependencies require."""
    # FastAPI ≥ 0.16x keeps included routers nested; iter_route_contexts flattens them
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(flatten(app.routes)) if flatten is not None else list(app.routes)
    found = []
    for route in routes:
        dependant = getattr(route, "dependant", None)
        scopes = frozenset(_scopes(dependant)) if dependant is not None else frozenset()
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append(_Route(method, route.path, scopes))
    return found


@pytest.fixture
def routes(api_project: Project) -> list[_Route]:
    return app_routes(create_app(api_project, loader=False))


def test_the_routes_without_a_scope_are_exactly_the_public_ones(routes: list[_Route]) -> None:
    assert {r.path for r in routes if not r.scopes} == PUBLIC
    assert "/v1/batch" in {r.path for r in routes if r.scopes}  # the walk reached the routers


def test_the_api_document_names_the_key_schemes_on_exactly_the_gated_routes(
    api_project: Project, routes: list[_Route]
) -> None:
    document = create_app(api_project, loader=False).openapi()
    schemes = document["components"]["securitySchemes"]
    assert (schemes["HTTPBearer"]["scheme"], schemes["HTTPBasic"]["scheme"]) == ("bearer", "basic")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if {"HTTPBearer", "HTTPBasic"} <= {n for s in operation.get("security", []) for n in s}
    }
    # the document writes a path parameter without its converter ({identifier:path})
    gated = {(r.method, re.sub(r":\w+\}", "}", r.path)) for r in routes if r.scopes}
    assert documented == gated


def test_a_public_probe_or_document_needs_no_key(http: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"):
        assert http.get(path).status_code == 200, path


def _bad_keys(project: Project, valid_admin: str) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused, by what is wrong with them."""
    at = project.clock()
    with project.store.begin() as connection:
        revoked = create_key(connection, name="gone", role=Role.ADMIN, at=at, actor="test")
        revoke_key(connection, revoked.key.id, at=at, actor="test")
        expired = create_key(
            connection,
            name="old",
            role=Role.ADMIN,
            at=at - dt.timedelta(days=2),
            actor="test",
            expires_at=at - dt.timedelta(days=1),
        )
    key_id = valid_admin.split("_")[1]
    return {
        "no key": {},
        "malformed key": {"authorization": "Bearer not-a-key"},
        "unknown key": {"authorization": "Bearer tnr_000000000000_" + "x" * 43},
        "forged secret": {"authorization": f"Bearer tnr_{key_id}_" + "A" * 43},
        "not base64": {"authorization": "Basic %%%"},
        "unknown scheme": {"authorization": f"Token {valid_admin}"},
        "revoked key": {"authorization": f"Bearer {revoked.secret}"},
        "expired key": {"authorization": f"Bearer {expired.secret}"},
    }


def _call(http: httpx.Client, route: _Route, headers: dict[str, str]) -> httpx.Response:
    body = b"{}" if route.method in ("POST", "PUT", "PATCH", "DELETE") else None
    if body is not None:
        headers = {**headers, "content-type": "application/json"}
    return http.request(route.method, route.url(), content=body, headers=headers)


def test_every_gated_route_refuses_bad_keys_and_roles_without_its_scope(
    api_project: Project, keys: dict[Role, str], http: httpx.Client, routes: list[_Route]
) -> None:
    gated = [r for r in routes if r.scopes]
    bad = _bad_keys(api_project, keys[Role.ADMIN])
    wrong: list[str] = []

    def check(route: _Route, who: str, headers: dict[str, str], refused: int | None) -> None:
        response = _call(http, route, headers)
        status = response.status_code
        if refused is None:  # admitted: anything but a refusal or a crash
            if status in (401, 403) or status >= 500:
                wrong.append(f"{route} as {who}: {status} {response.text}")
        elif status != refused or response.json().get("error") != (
            "unauthorized" if refused == 401 else "forbidden"
        ):
            wrong.append(f"{route} as {who}: {status} {response.text}, expected {refused}")
        elif refused == 401 and "www-authenticate" not in response.headers:
            wrong.append(f"{route} as {who}: 401 without a WWW-Authenticate challenge")

    for route in gated:
        for who, headers in bad.items():
            check(route, who, headers, 401)
        for role in Role:
            allowed = route.scopes <= ROLE_SCOPES[role]
            headers = {"authorization": f"Bearer {keys[role]}"}
            check(route, f"role {role.value}", headers, None if allowed else 403)
    assert wrong == []


def test_a_key_over_its_rate_limit_is_told_when_to_retry(
    api_project: Project, keys: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_SERVE_RATE_LIMIT", "1")
    monkeypatch.setenv("TENURE_SERVE_RATE_BURST", "2")
    limited = Project(api_project.root, clock=api_project.clock)  # reads the settings anew
    event = {"userId": "u1", "event": "Report Exported", "messageId": "r-1"}
    try:
        with running(create_app(limited, loader=False)) as url, httpx.Client(base_url=url) as http:
            auth = (keys[Role.INGEST], "")
            statuses = [http.post("/v1/track", json=event, auth=auth) for _ in range(3)]
            other = http.post("/v1/track", json=event, auth=(keys[Role.OPERATOR], ""))
    finally:
        limited.close()
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["retry-after"] == "1"
    assert statuses[2].json()["error"] == "rate_limited"
    assert other.status_code == 200  # each key has a bucket of its own
