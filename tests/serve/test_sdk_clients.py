"""The official Segment and RudderStack Python SDKs, pointed at a live server, unchanged.

Each SDK sends every call type through its own batching consumer; every call
must land in the inbox as sent, the SDK must report no error, and the loader
must take all of it into the lake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import pytest
import rudderstack.analytics  # type: ignore[import-untyped]
import segment.analytics  # type: ignore[import-untyped]
from sqlalchemy import select

from tenure.api import load_once
from tenure.govern.keys import Role
from tenure.project import Project
from tenure.store import list_quarantined
from tenure.store._tables import inbox

#: Before the tests' fixed clock (2024-06-01), so no event is "from the future".
_WHEN = dt.datetime(2024, 5, 30, 10, 0, tzinfo=dt.UTC)


class _Sdk(Protocol):
    def identify(self, **kwargs: Any) -> Any: ...
    def track(self, **kwargs: Any) -> Any: ...
    def group(self, **kwargs: Any) -> Any: ...
    def page(self, **kwargs: Any) -> Any: ...
    def screen(self, **kwargs: Any) -> Any: ...
    def alias(self, **kwargs: Any) -> Any: ...
    def flush(self) -> None: ...
    def join(self) -> None: ...


def _segment(key: str, host: str, on_error: Callable[..., None]) -> _Sdk:
    return segment.analytics.Client(  # type: ignore[no-any-return]
        write_key=key, host=host, on_error=on_error, max_retries=0, upload_interval=0.05
    )


def _rudderstack(key: str, host: str, on_error: Callable[..., None]) -> _Sdk:
    # gzip is RudderStack's default; said here so the test keeps covering it
    return rudderstack.analytics.Client(  # type: ignore[no-any-return]
        write_key=key, host=host, on_error=on_error, max_retries=0, upload_interval=0.05, gzip=True
    )


def _send_every_call(client: _Sdk, prefix: str) -> dict[str, dict[str, Any]]:
    """One call of each type; what we expect in the inbox, by message id."""
    at = {"timestamp": _WHEN}
    client.identify(
        user_id="u1",
        traits={"email": "dee@acme.com", "plan": "pro"},
        message_id=f"{prefix}-i",
        **at,
    )
    client.track(
        user_id="u1",
        event="Report Exported",
        properties={"format": "csv"},
        context={"groupId": "acme"},
        message_id=f"{prefix}-t",
        **at,
    )
    client.group(
        user_id="u1", group_id="acme", traits={"name": "Acme"}, message_id=f"{prefix}-g", **at
    )
    client.page(
        user_id="u1",
        name="Pricing",
        properties={"path": "/pricing"},
        message_id=f"{prefix}-p",
        **at,
    )
    client.screen(user_id="u1", name="Home", message_id=f"{prefix}-s", **at)
    client.alias(previous_id="anon-7", user_id="u1", message_id=f"{prefix}-a", **at)
    client.flush()
    client.join()
    traits = {"email": "dee@acme.com", "plan": "pro"}
    return {
        f"{prefix}-i": {"type": "identify", "userId": "u1", "traits": traits},
        f"{prefix}-t": {"type": "track", "userId": "u1", "event": "Report Exported"},
        f"{prefix}-g": {"type": "group", "userId": "u1", "groupId": "acme"},
        f"{prefix}-p": {"type": "page", "userId": "u1", "name": "Pricing"},
        f"{prefix}-s": {"type": "screen", "userId": "u1", "name": "Home"},
        f"{prefix}-a": {"type": "alias", "userId": "u1", "previousId": "anon-7"},
    }


def _traits(event: dict[str, Any]) -> dict[str, Any] | None:
    # RudderStack sends identify traits in context.traits only; Segment at the top level
    return event.get("traits") or (event.get("context") or {}).get("traits")


@pytest.mark.parametrize(
    ("make_client", "prefix"),
    [(_segment, "seg"), (_rudderstack, "rudder")],
    ids=["segment", "rudderstack"],
)
def test_an_sdk_delivers_every_call_type_to_the_inbox_and_the_lake(
    api_project: Project,
    keys: dict[Role, str],
    base_url: str,
    make_client: Callable[[str, str, Callable[..., None]], _Sdk],
    prefix: str,
) -> None:
    errors: list[str] = []

    def on_error(error: Exception, batch: list[dict[str, Any]]) -> None:
        response = getattr(error, "response", None)
        detail = f" {response.status_code} {response.text}" if response is not None else ""
        errors.append(f"{type(error).__name__}: {error}{detail} ({len(batch)} events)")

    expected = _send_every_call(make_client(keys[Role.INGEST], base_url, on_error), prefix)

    assert errors == []
    with api_project.store.connect() as connection:
        rows = connection.execute(select(inbox.c.message_id, inbox.c.payload)).all()
    stored = {row.message_id: orjson.loads(row.payload) for row in rows}
    assert set(stored) == set(expected)
    for message_id, fields in expected.items():
        event = stored[message_id]
        assert event["messageId"] == message_id
        for name, value in fields.items():
            got = _traits(event) if name == "traits" else event.get(name)
            assert got == value, f"{message_id}.{name}"
        assert event["timestamp"].startswith("2024-05-30T10:00:00")

    assert load_once(api_project) == len(expected)
    with api_project.store.connect() as connection:
        assert list_quarantined(connection) == []
    assert api_project.index.event_count() == len(expected)
