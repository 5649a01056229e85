"""Requests of the Segment HTTP tracking API: their bodies checked and split into events.

This is the structural check a request must pass to be acknowledged: a body
that is JSON, events that are objects of a known type with an identity and
the field their type needs, Segment's size limits. What a request fails on is
named by its place (``batch[3].userId``), so the client can fix it. The
finer checks (catalog properties, timestamps in range) run in the loader,
which quarantines an event with its reason rather than losing it.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["EVENT_TYPES", "CollectedEvent", "RequestError", "decode_body", "events_of"]

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")

#: What each type needs besides an identity, as Segment's spec says.
_REQUIRED = {"track": "event", "group": "groupId", "alias": "previousId"}
_MAX_MESSAGE_ID = 200


class RequestError(ValueError):
    """A request that cannot be acknowledged; *field* says where the problem is."""

    def __init__(self, field: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class CollectedEvent:
    message_id: str
    payload: bytes  # the event as the loader will read it


def decode_body(body: bytes, encoding: str | None, limit: int) -> Any:
    """The JSON of a request body, gunzipped if need be, refused past *limit* bytes."""
    if encoding:
        coding = encoding.strip().lower()
        if coding not in ("gzip", "identity", "deflate"):
            raise RequestError("Content-Encoding", f"{encoding!r} is not supported (use gzip)")
        if coding != "identity":
            # decompress at most limit + 1 bytes: a small bomb cannot inflate past the limit
            inflater = zlib.decompressobj(wbits=31 if coding == "gzip" else 15)
            try:
                body = inflater.decompress(body, limit + 1)
            except zlib.error as error:
                raise RequestError("body", f"is not valid {coding} data ({error})") from None
    if len(body) > limit:
        raise RequestError(
            "body",
            f"is larger than the limit of {limit} bytes per request (send fewer events per batch)",
            status=413,
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError("body", f"is not valid JSON ({error})") from None


def _identity(event: Mapping[str, Any], where: str) -> dict[str, str]:
    found = {}
    for key in ("userId", "anonymousId"):
        value = event.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RequestError(f"{where}.{key}", "must be a string")
        text = str(value).strip()
        if text:
            found[key] = text
    if not found:
        raise RequestError(f"{where}.userId", "an event needs a userId or an anonymousId")
    return found


def _checked_time(event: Mapping[str, Any], key: str, where: str) -> dt.datetime | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{where}.{key}", "must be an ISO 8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"{where}.{key}", f"{value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _event(
    raw: Any,
    where: str,
    *,
    route_type: str | None,
    shared: Mapping[str, Any],
    received_at: dt.datetime,
    max_event_bytes: int,
) -> CollectedEvent:
    if not isinstance(raw, dict):
        raise RequestError(where, "an event must be a JSON object")
    event = dict(raw)
    kind = event.get("type", route_type)
    if route_type is not None and kind != route_type:
        raise RequestError(f"{where}.type", f"is {kind!r} but this route takes {route_type!r}")
    if kind not in EVENT_TYPES:
        raise RequestError(f"{where}.type", f"must be one of {', '.join(EVENT_TYPES)}")
    event["type"] = kind
    event.update(_identity(event, where))
    needed = _REQUIRED.get(kind)
    if needed is not None:
        value = event.get(needed)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise RequestError(f"{where}.{needed}", f"a {kind} call needs a non-empty {needed}")
    for key in ("properties", "traits", "context", "integrations"):
        if key in event and event[key] is not None and not isinstance(event[key], dict):
            raise RequestError(f"{where}.{key}", "must be a JSON object")
    # the batch's context and integrations apply to every event; the event's own keys win
    for key in ("context", "integrations"):
        common = shared.get(key)
        if isinstance(common, dict):
            own = event.get(key)
            event[key] = {**common, **own} if isinstance(own, dict) else dict(common)
    sent_at = _checked_time(event, "sentAt", where)
    if sent_at is None and "sentAt" in shared:
        event["sentAt"] = shared["sentAt"]
        sent_at = _checked_time(event, "sentAt", where)
    stamp = _checked_time(event, "timestamp", where)
    original = _checked_time(event, "originalTimestamp", where)
    if stamp is None:
        # Segment's clock-skew correction: the device's clock may be off, but the
        # time between its event and its send is not
        when = received_at - (sent_at - original) if original and sent_at else received_at
        event["timestamp"] = when.isoformat().replace("+00:00", "Z")
    event["receivedAt"] = received_at.isoformat().replace("+00:00", "Z")
    message_id = event.get("messageId")
    if message_id is None:
        message_id = event["messageId"] = f"api-{uuid.uuid4()}"
    elif not isinstance(message_id, str) or not message_id.strip():
        raise RequestError(f"{where}.messageId", "must be a non-empty string")
    elif len(message_id) > _MAX_MESSAGE_ID:
        raise RequestError(f"{where}.messageId", f"is longer than {_MAX_MESSAGE_ID} characters")
    payload = orjson.dumps(event)
    if len(payload) > max_event_bytes:
        raise RequestError(
            where,
            f"is {len(payload)} bytes; an event may be at most {max_event_bytes} bytes",
            status=413,
        )
    return CollectedEvent(message_id, payload)


def events_of(
    document: Any,
    *,
    route_type: str | None,
    received_at: dt.datetime,
    max_event_bytes: int,
) -> list[CollectedEvent]:
    """The events of a ``/v1/batch`` body (*route_type* None) or of a single-call body."""
    if not isinstance(document, dict):
        raise RequestError("body", "must be a JSON object")
    options = {
        "received_at": received_at.astimezone(dt.UTC),
        "max_event_bytes": max_event_bytes,
    }
    if route_type is not None:
        return [_event(document, "body", route_type=route_type, shared={}, **options)]  # type: ignore[arg-type]
    batch = document.get("batch")
    if not isinstance(batch, list):
        raise RequestError("batch", "must be a JSON array of events")
    shared = {k: document[k] for k in ("context", "integrations", "sentAt") if k in document}
    return [
        _event(raw, f"batch[{i}]", route_type=None, shared=shared, **options)  # type: ignore[arg-type]
        for i, raw in enumerate(batch)
    ]
