"""Keys over the API: created, rotated and revoked by an admin, in force at once, audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenure.api import create_app
from tenure.govern.keys import Role
from tenure.project import Project
from tests.conftest import make_project
from tests.serve._live import running
from tests.serve.conftest import make_keys

_EVENT = {"type": "track", "userId": "u1", "event": "Signed In", "messageId": "k-1"}


@pytest.fixture
def cached(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Project, httpx.Client]]:
    """A server that remembers keys for a minute: revocation must still bite at once."""
    monkeypatch.setenv("TENURE_SERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("TENURE_SERVE_KEY_CACHE_SECONDS", "60")
    project = make_project(tmp_path / "proj", store_url)
    with running(create_app(project, loader=False)) as url, httpx.Client(base_url=url) as http:
        yield project, http
    project.close()


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_an_admin_creates_rotates_and_revokes_keys_and_each_bites_at_once(
    cached: tuple[Project, httpx.Client],
) -> None:
    project, http = cached
    keys = make_keys(project)
    admin = _bearer(keys[Role.ADMIN])
    assert http.post("/v1/keys", json={"name": "x", "role": "ingest"},
                     headers=_bearer(keys[Role.OPERATOR])).status_code == 403  # fmt: skip

    created = http.post("/v1/keys", json={"name": "web app", "role": "ingest"}, headers=admin)
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["key"].startswith(f"tnr_{first['info']['id']}_")
    listed = http.get("/v1/keys", headers=admin).json()["keys"]
    assert first["info"]["id"] in {k["id"] for k in listed}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    batch = {"batch": [_EVENT]}
    assert http.post("/v1/batch", json=batch, headers=_bearer(first["key"])).status_code == 200

    # rotation without grace: the new key works, the old one (cached a minute) does not
    rotated = http.post(
        f"/v1/keys/{first['info']['id']}/rotate", json={"grace_hours": 0}, headers=admin
    ).json()
    assert rotated["replaces"] == first["info"]["id"]
    assert http.post("/v1/batch", json=batch, headers=_bearer(first["key"])).status_code == 401
    assert http.post("/v1/batch", json=batch, headers=_bearer(rotated["key"])).status_code == 200

    revoked = http.post(f"/v1/keys/{rotated['info']['id']}/revoke", headers=admin)
    assert revoked.json()["active"] is False
    assert http.post("/v1/batch", json=batch, headers=_bearer(rotated["key"])).status_code == 401
    again = http.post(f"/v1/keys/{rotated['info']['id']}/revoke", headers=admin)
    assert again.status_code == 409
    assert again.json()["field"] == "path.key_id"
    assert http.post("/v1/keys/000000000000/revoke", headers=admin).status_code == 404

    audit = http.get("/v1/audit", params={"action": "key.revoke"}, headers=admin).json()
    assert [e["actor"] for e in audit["entries"]] == [f"key:{keys[Role.ADMIN].split('_')[1]}"]
