"""The Segment-compatible collection API: auth, acknowledgement, dedupe, limits, loading."""

from __future__ import annotations

import gc
import gzip

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tenure.api import create_app, load_once
from tenure.govern.keys import Role
from tenure.project import Project
from tenure.store import list_quarantined
from tenure.store._tables import inbox
from tests.serve._live import running


def _track(i: int, **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "userId": f"u{i}",
        "event": "Report Exported",
        "messageId": f"m-{i}",
        "timestamp": "2024-05-30T10:00:00Z",
        "context": {"groupId": "acme"},
        **extra,
    }


def _inbox_count(project: Project) -> int:
    with project.store.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(inbox)).scalar_one())


def test_a_batch_is_committed_before_it_is_acknowledged_and_a_retry_is_a_no_op(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    body = {"batch": [_track(i) for i in range(50)]}
    auth = (keys[Role.INGEST], "")
    first = http.post("/v1/batch", json=body, auth=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {"success": True, "accepted": 50, "duplicates": 0}
    assert _inbox_count(api_project) == 50  # durable the moment it was acknowledged
    retry = http.post("/v1/batch", json=body, auth=auth)
    assert retry.json() == {"success": True, "accepted": 0, "duplicates": 50}
    assert _inbox_count(api_project) == 50


def test_gzip_bodies_and_single_calls_are_accepted(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    headers = {"authorization": f"Bearer {keys[Role.INGEST]}", "content-encoding": "gzip"}
    body = gzip.compress(orjson.dumps({"batch": [_track(1), _track(2)]}))
    assert http.post("/v1/batch", content=body, headers=headers).json()["accepted"] == 2
    auth = (keys[Role.INGEST], "")
    single = {"userId": "u9", "traits": {"email": "dee@acme.com"}, "messageId": "i-9"}
    assert http.post("/v1/identify", json=single, auth=auth).json()["accepted"] == 1
    wrong = http.post("/v1/identify", json={**single, "type": "track"}, auth=auth)
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "body.type"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "track", "event": "X"}, "batch[1].userId"),
        ({"type": "track", "userId": "u"}, "batch[1].event"),
        ({"type": "group", "userId": "u"}, "batch[1].groupId"),
        ({"type": "alias", "userId": "u"}, "batch[1].previousId"),
        ({"type": "click", "userId": "u"}, "batch[1].type"),
        ({"type": "track", "userId": "u", "event": "X", "properties": [1]}, "batch[1].properties"),
        ({"type": "track", "userId": "u", "event": "X", "timestamp": "soon"}, "batch[1].timestamp"),
        ({"type": "track", "userId": {"a": 1}, "event": "X"}, "batch[1].userId"),
        ("not an object", "batch[1]"),
    ],
)
def test_a_malformed_event_is_a_400_naming_its_field_and_nothing_is_stored(
    api_project: Project, keys: dict[Role, str], http: httpx.Client, event: object, field: str
) -> None:
    response = http.post(
        "/v1/batch", json={"batch": [_track(0), event]}, auth=(keys[Role.INGEST], "")
    )
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert _inbox_count(api_project) == 0  # all or nothing


def test_segment_size_limits_name_the_offending_event(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    auth = (keys[Role.INGEST], "")
    big = _track(1, properties={"blob": "x" * 33_000})
    response = http.post("/v1/batch", json={"batch": [_track(0), big]}, auth=auth)
    assert response.status_code == 413
    assert response.json()["field"] == "batch[1]"
    assert "32768" in response.json()["message"]
    many = {"batch": [_track(i, properties={"blob": "y" * 20_000}) for i in range(30)]}
    response = http.post("/v1/batch", json=many, auth=auth)
    assert response.status_code == 413
    assert response.json()["field"] == "body"
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = http.post("/v1/batch", content=bomb, headers={"content-encoding": "gzip"}, auth=auth)
    assert response.status_code == 413
    assert http.post("/v1/batch", content=b"{nope", auth=auth).json()["field"] == "body"
    assert _inbox_count(api_project) == 0


def test_keys_gate_collection(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    body = {"batch": [_track(1)]}
    assert http.post("/v1/batch", json=body).status_code == 401
    forged = "tnr_000000000000_" + "x" * 40
    assert http.post("/v1/batch", json=body, auth=(forged, "")).status_code == 401
    assert http.post("/v1/batch", json=body, auth=(keys[Role.ANALYST], "")).status_code == 403
    assert http.post("/v1/batch", json=body, auth=(keys[Role.ADMIN], "")).status_code == 200


def test_the_loader_moves_the_inbox_to_the_lake_and_quarantines_what_fails(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    auth = (keys[Role.INGEST], "")
    # structurally fine, but a catalog event with a property of the wrong type
    bad = _track(99, event="Payment Failed", properties={"amount": "a lot"})
    http.post("/v1/batch", json={"batch": [_track(1), _track(2), bad]}, auth=auth)
    assert load_once(api_project) == 2
    assert api_project.index.event_count() == 2
    with api_project.store.connect() as connection:
        quarantined = list_quarantined(connection)
        waiting = connection.execute(
            select(func.count()).select_from(inbox).where(inbox.c.loaded_at.is_(None))
        ).scalar_one()
    assert [q.source_file for q in quarantined] == ["inbox:http"]
    assert waiting == 0
    # a retry after loading is still a no-op, and loading again adds nothing
    again = http.post("/v1/batch", json={"batch": [_track(1)]}, auth=auth)
    assert again.json()["duplicates"] == 1
    assert load_once(api_project) == 0


def test_a_server_process_freezes_its_start_up_objects_and_a_test_app_does_not(
    api_project: Project,
) -> None:
    """``tenure serve`` keeps start-up's objects out of full garbage collections."""
    gc.unfreeze()
    try:
        with running(create_app(api_project, loader=False)) as url:
            assert httpx.get(f"{url}/healthz").status_code == 200
            assert gc.get_freeze_count() == 0
        with running(create_app(api_project, loader=False, server_process=True)) as url:
            assert httpx.get(f"{url}/healthz").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the modules, the app and its schemas
    finally:
        gc.unfreeze()
