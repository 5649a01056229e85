"""The canonical event: Segment's spec for identify, track, group, page, screen and alias calls.

Every event tenure stores is one of these six calls, whatever system it came
from. Field names on the wire are Segment's camelCase; the Python attributes are
snake_case and either name is accepted on input. Unknown top-level fields are
kept, as Segment passes them through, except ``writeKey``, which is a
credential and never stored.

Invalid input raises :class:`pydantic.ValidationError`, whose errors name the
offending field; the HTTP layer turns that into a 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

__all__ = [
    "AliasEvent",
    "BatchRequest",
    "Event",
    "GroupEvent",
    "IdentifyEvent",
    "PageEvent",
    "ScreenEvent",
    "TrackEvent",
    "parse_batch",
    "parse_event",
]

#: Namespace of the messageIds tenure derives for calls that arrive without one.
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f0c2a52-3d4e-5b8f-9a1c-7e2d4b6a8c10")
#: Sent by Segment clients to authenticate; a secret, so dropped from the event.
_CREDENTIAL_FIELDS = ("writeKey",)


def _to_utc(value: object) -> datetime:
    """An ISO 8601 string or a datetime, as an aware UTC datetime (naive means UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(
            f"expected an ISO 8601 timestamp string, got {type(value).__name__} {value!r}"
        )
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _int_id_to_str(value: object) -> object:
    # Segment's libraries accept numeric ids and send them on as numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _blank_to_none(value: object) -> object:
    # Libraries send "" (or null) for an unknown id; neither identifies anyone.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _require_nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _none_to_empty(value: object) -> object:
    return {} if value is None else value


Timestamp = Annotated[datetime, BeforeValidator(_to_utc)]
NonBlankStr = Annotated[str, AfterValidator(_require_nonblank)]
#: A required id that Segment lets clients send as a number.
RequiredId = Annotated[str, BeforeValidator(_int_id_to_str), AfterValidator(_require_nonblank)]
#: An optional id; blank means absent.
OptionalUserId = Annotated[
    str | None, BeforeValidator(_int_id_to_str), BeforeValidator(_blank_to_none)
]
OptionalAnonymousId = Annotated[str | None, BeforeValidator(_blank_to_none)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_none_to_empty)]


class _Call(BaseModel):
    """The fields every call shares (Segment's common fields)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    message_id: NonBlankStr = Field(alias="messageId")
    user_id: OptionalUserId = Field(default=None, alias="userId")
    anonymous_id: OptionalAnonymousId = Field(default=None, alias="anonymousId")
    timestamp: Timestamp
    sent_at: Timestamp | None = Field(default=None, alias="sentAt")
    received_at: Timestamp | None = Field(default=None, alias="receivedAt")
    original_timestamp: Timestamp | None = Field(default=None, alias="originalTimestamp")
    #: Kept as Segment sends it: groupId, traits, externalIds, library, ip, page, …
    context: JsonObject = Field(default_factory=dict)
    integrations: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_credentials(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(key in data for key in _CREDENTIAL_FIELDS):
            return {k: v for k, v in data.items() if k not in _CREDENTIAL_FIELDS}
        return data

    @model_validator(mode="after")
    def _needs_an_identity(self) -> Self:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("a call needs a userId or an anonymousId; neither was given")
        return self


class IdentifyEvent(_Call):
    """Who the user is: ``traits`` about them (email, name, plan, …)."""

    type: Literal["identify"]
    traits: JsonObject = Field(default_factory=dict)


class TrackEvent(_Call):
    """Something the user did: the ``event`` name and its ``properties``."""

    type: Literal["track"]
    event: NonBlankStr
    properties: JsonObject = Field(default_factory=dict)


class GroupEvent(_Call):
    """The user belongs to ``groupId`` (an account or company), with its ``traits``."""

    type: Literal["group"]
    group_id: RequiredId = Field(alias="groupId")
    traits: JsonObject = Field(default_factory=dict)


class PageEvent(_Call):
    """The user viewed a web page."""

    type: Literal["page"]
    name: str | None = None
    category: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class ScreenEvent(_Call):
    """The user viewed a screen of a mobile app."""

    type: Literal["screen"]
    name: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class AliasEvent(_Call):
    """``userId`` (the new identity) and ``previousId`` are the same person."""

    type: Literal["alias"]
    previous_id: RequiredId = Field(alias="previousId")
    # Segment's alias spec makes userId required: it is the identity being merged into.
    user_id: RequiredId = Field(alias="userId")


#: One canonical event: a Segment call, told apart by its ``type``.
Event = Annotated[
    IdentifyEvent | TrackEvent | GroupEvent | PageEvent | ScreenEvent | AliasEvent,
    Field(discriminator="type"),
]

_EVENT: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(title="Event"))
_JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(
    dict[str, Any], config=ConfigDict(title="JSON body")
)


def _merge_batch_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Copy a batch body's context, integrations and sentAt into each of its calls.

    Segment merges the batch-level ``context`` and ``integrations`` with each
    call's own (the call's keys win) and stamps calls without a ``sentAt`` with
    the batch's.
    """
    items = data.get("batch")
    if not isinstance(items, list):
        return data
    shared = {
        key: data[key]
        for key in ("context", "integrations")
        if isinstance(data.get(key), Mapping) and data[key]
    }
    sent_at = data.get("sentAt")
    merged: list[Any] = []
    for item in items:
        if not isinstance(item, Mapping):
            merged.append(item)  # left for validation to reject with its index
            continue
        call = dict(item)
        for key, defaults in shared.items():
            own = call.get(key)
            call[key] = {**defaults, **own} if isinstance(own, Mapping) else dict(defaults)
        if sent_at is not None and call.get("sentAt") is None:
            call["sentAt"] = sent_at
        merged.append(call)
    return {**data, "batch": merged}


class BatchRequest(BaseModel):
    """The body of Segment's ``/v1/batch``: calls plus context shared by all of them."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    batch: list[Event]
    context: JsonObject = Field(default_factory=dict)
    integrations: dict[str, Any] | None = None
    sent_at: Timestamp | None = Field(default=None, alias="sentAt")

    @model_validator(mode="before")
    @classmethod
    def _merge_into_calls(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        body = {k: v for k, v in data.items() if k not in _CREDENTIAL_FIELDS}
        return _merge_batch_defaults(body)


def _as_object(obj: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    if isinstance(obj, bytes | str):
        return _JSON_OBJECT.validate_json(obj)
    return dict(obj)


def _stamp(call: Any, received_at: datetime) -> Any:
    """What Segment's servers add on receipt: receivedAt, a missing timestamp, a messageId."""
    if not isinstance(call, Mapping):
        return call
    stamped = dict(call)
    stamped["receivedAt"] = received_at
    if stamped.get("timestamp") is None:
        stamped["timestamp"] = received_at
    if not stamped.get("messageId"):
        # Derived from the content rather than random, so the same call parsed
        # twice gets the same id and deduplicates.
        canonical = orjson.dumps(stamped, option=orjson.OPT_SORT_KEYS, default=str)
        stamped["messageId"] = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, canonical.decode()))
    return stamped


def parse_event(
    obj: Mapping[str, Any] | bytes | str, *, received_at: datetime | None = None
) -> Event:
    """Validate one Segment call (a mapping, or its JSON text) into a canonical event.

    With ``received_at`` (the receiving edge's clock reading) the call is stamped
    the way Segment's servers stamp it: ``receivedAt`` is set, a missing
    ``timestamp`` becomes the receipt time and a missing ``messageId`` is derived
    from the call's content. Without it, both are required.

    Raises :class:`pydantic.ValidationError` naming every invalid field.
    """
    data: Any = _as_object(obj)
    if received_at is not None:
        data = _stamp(data, _to_utc(received_at))
    return _EVENT.validate_python(data)


def parse_batch(
    obj: Mapping[str, Any] | bytes | str, *, received_at: datetime | None = None
) -> BatchRequest:
    """Validate a ``/v1/batch`` body; ``received_at`` stamps each call as in :func:`parse_event`.

    The batch is all or nothing: one invalid call fails it, and the error's
    location names the call's index (``batch.3.track.event``).
    """
    data = _as_object(obj)
    if received_at is not None and isinstance(data.get("batch"), list):
        when = _to_utc(received_at)
        data = _merge_batch_defaults(data)
        data["batch"] = [_stamp(call, when) for call in data["batch"]]
    return BatchRequest.model_validate(data)
