"""What every provider's mapping shares: events in Segment's format, message ids, reading payloads.

The readers name the place a payload is wrong (``body.data.object.customer``)
in the :class:`RequestError` they raise; nothing here knows more of HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tenure.collect._http import CollectedEvent, RequestError

__all__ = [
    "Event",
    "Mapped",
    "Who",
    "collected",
    "count_of",
    "file_message_id",
    "group",
    "identify",
    "inner",
    "iso",
    "json_object",
    "optional_unix_time",
    "required_text",
    "text_of",
    "time_of",
    "track",
    "unix_time",
]

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Mapped:
    """The canonical events of one request, and how many notifications it held and ignored."""

    events: list[Event]
    received: int
    ignored: int


# --------------------------------------------------------------------------- building events


def file_message_id(source: str, natural_key: str, at: dt.datetime) -> str:
    """The message id file ingest gives the record *natural_key* at *at*.

    The same formula as :mod:`tenure.collect._validate` (md5 of source,
    natural key and time), so a fact seen in an export and by a webhook is one event.
    """
    stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = f"{source}|{natural_key}|{stamp}"
    return "tn-" + hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Who:
    """Who an event is about, in the conventions of the provider's file mapping."""

    source: str
    notification: str  # the provider's event type, kept in context.webhook
    user_id: str | None = None
    group_id: str | None = None
    email: str | None = None
    external: tuple[tuple[str, str, str], ...] = ()  # (id, type, collection)

    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = {
            "externalIds": [
                {"id": i, "type": t, "collection": c, "encoding": "none"}
                for i, t, c in self.external
            ],
            "source": self.source,
            "webhook": self.notification,
        }
        if self.group_id is not None:
            context["groupId"] = self.group_id
        return context


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def track(who: Who, name: str, at: dt.datetime, message_id: str, props: Event) -> Event:
    event: Event = {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "timestamp": iso(at),
        "properties": _compact(props),
        "context": who.context(),
    }
    if who.user_id is not None:
        event["userId"] = who.user_id
    if who.email is not None:
        event["context"]["traits"] = {"email": who.email}
    return event


def identify(who: Who, at: dt.datetime, message_id: str, traits: Event) -> Event:
    event: Event = {
        "type": "identify",
        "messageId": message_id,
        "timestamp": iso(at),
        "traits": _compact({**traits, "email": who.email}),
        "context": who.context(),
    }
    if who.user_id is not None:
        event["userId"] = who.user_id
    return event


def group(who: Who, group_id: str, at: dt.datetime, message_id: str, traits: Event) -> Event:
    return {
        "type": "group",
        "groupId": group_id,
        "messageId": message_id,
        "timestamp": iso(at),
        "traits": _compact(traits),
        "context": who.context(),
    }


def collected(events: Sequence[Event], received_at: dt.datetime) -> list[CollectedEvent]:
    """The events as the inbox stores them, stamped with when they were received."""
    stamp = received_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return [
        CollectedEvent(e["messageId"], orjson.dumps({**e, "receivedAt": stamp})) for e in events
    ]


# --------------------------------------------------------------------------- reading payloads


def json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(where, "must be a JSON object")
    return value


def inner(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The object under *key*, or an empty one when it is missing or not an object."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def text_of(value: Any) -> str | None:
    """A string or an integer id as text; None for anything else or blank."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def required_text(obj: Mapping[str, Any], key: str, where: str) -> str:
    text = text_of(obj.get(key))
    if text is None:
        raise RequestError(f"{where}.{key}", "is required (a non-empty string or an integer id)")
    return text


def count_of(value: Any, low: int = 0) -> int | None:
    """A whole number from *low* up (a JSON number may be any size: JSON's safe range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**53:
        return None
    return value


def _seconds(value: float, where: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise RequestError(where, f"{value!r} is not a time this server can represent") from None


def unix_time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(where, "must be a Unix time in seconds")
    return _seconds(value, where)


def optional_unix_time(obj: Mapping[str, Any], key: str, where: str) -> dt.datetime | None:
    value = obj.get(key)
    return None if value is None else unix_time(value, f"{where}.{key}")


def time_of(value: Any, where: str) -> dt.datetime:
    """An ISO 8601 time (naive means UTC), or Unix seconds or milliseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _seconds(value / 1000 if value > 10**11 else value, where)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise RequestError(where, f"must be an ISO 8601 time or a Unix time (got {value!r})")
