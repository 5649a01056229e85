"""``GET /v1/reports/experiments`` serves the report `tenure report experiments` last computed."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from tenure.cli import app
from tenure.govern.keys import Role
from tenure.project import Project

ROUTE = "/v1/reports/experiments"


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_404_until_computed_then_the_latest_report(
    api_project: Project, http: httpx.Client, keys: dict[Role, str]
) -> None:
    missing = http.get(ROUTE, headers=_auth(keys[Role.ANALYST]))
    assert missing.status_code == 404
    assert missing.json()["message"] == "no experiments report has been computed yet"
    args = ["report", "experiments", "-p", str(api_project.root), "--as-of", "2024-06-01T00:00Z"]
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    served = http.get(ROUTE, headers=_auth(keys[Role.ANALYST]))
    assert served.status_code == 200
    body = served.json()
    assert body["as_of"] == "2024-06-01T00:00:00+00:00"
    assert body["groups"] == []
    assert body["notes"] == ["no decision in the log carries a holdout check"]
    assert body["computed_at"]
    # an ingest key may not read reports
    assert http.get(ROUTE, headers=_auth(keys[Role.INGEST])).status_code == 403
