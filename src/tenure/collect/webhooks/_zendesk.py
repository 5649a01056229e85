"""Zendesk ticket webhooks (trigger bodies and event webhooks) as canonical events.

Identified as the ``zendesk.tickets`` mapping identifies them: the requester's
external id as userId, their email, their Zendesk id as a ``zendesk_user_id``
external id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tenure.collect._http import RequestError
from tenure.collect.webhooks._common import (
    Event,
    Mapped,
    Who,
    file_message_id,
    inner,
    iso,
    json_object,
    required_text,
    text_of,
    time_of,
    track,
)

__all__ = ["zendesk_events"]

_ZENDESK = "zendesk"
_PRIORITIES = ("low", "normal", "high", "urgent")
# Zendesk's channel ids (API, event webhooks) and display names (placeholders, CSV)
_CHANNELS = {
    "web": "web",
    "web form": "web",
    "web_form": "web",
    "web widget": "web",
    "web_widget": "web",
    "email": "email",
    "mail": "email",
    "chat": "chat",
    "messaging": "messaging",
    "native_messaging": "messaging",
    "voice": "phone",
    "phone": "phone",
    "phone call (incoming)": "phone",
    "phone call (outgoing)": "phone",
    "voicemail": "phone",
    "api": "api",
    "web service": "api",
    "web_service": "api",
    "mobile sdk": "mobile",
    "mobile_sdk": "mobile",
    "mobile": "mobile",
}
_BODY_CHARS = 8000  # a description longer than this is cut: an event stays under 32 KB
_RATINGS = {"good": 5, "bad": 1, "good with comment": 5, "bad with comment": 1}
_HINTS = {"created": "Ticket Created", "updated": "Ticket Updated", "solved": "Ticket Solved"}


def _name_of(value: Any) -> str | None:
    return text_of(value.get("name")) if isinstance(value, dict) else text_of(value)


def _channel(via: Any) -> str | None:
    raw = text_of(via.get("channel")) if isinstance(via, dict) else text_of(via)
    if raw is None:
        return None
    return _CHANNELS.get(raw.lower(), raw.lower())


@dataclass(frozen=True, slots=True)
class _Ticket:
    id: str
    who: Who
    status: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    properties: Event = field(default_factory=dict)
    body: str | None = None
    rating: dict[str, Any] | None = None


def _ticket(raw: Any, where: str, notification: str) -> _Ticket:
    ticket = json_object(raw, where)
    ticket_id = required_text(ticket, "id", where)
    requester, organization = inner(ticket, "requester"), inner(ticket, "organization")
    zendesk_user = text_of(requester.get("id")) or text_of(ticket.get("requester_id"))
    who = Who(
        _ZENDESK,
        notification,
        user_id=text_of(requester.get("external_id")),
        # the organization's external id is, like the requester's, your product's id
        group_id=text_of(organization.get("external_id")),
        email=text_of(requester.get("email")),
        external=((zendesk_user, "zendesk_user_id", "users"),) if zendesk_user else (),
    )
    if who.user_id is None and who.email is None and not who.external:
        raise RequestError(
            f"{where}.requester", "must name the requester (id, email or external_id)"
        )
    status = text_of(ticket.get("status"))
    priority = (text_of(ticket.get("priority")) or "").lower()
    tags = ticket.get("tags")
    stamps = {}
    for key in ("created_at", "updated_at"):
        value = ticket.get(key)
        stamps[key] = None if value is None else time_of(value, f"{where}.{key}")
    description = text_of(ticket.get("description"))
    properties = {
        "ticket_id": ticket_id,
        "subject": text_of(ticket.get("subject")),
        "priority": priority if priority in _PRIORITIES else None,
        "channel": _channel(ticket.get("via")),
        "type": text_of(ticket.get("type")),
        "tags": " ".join(str(t) for t in tags) if isinstance(tags, list) else text_of(tags),
        "group": _name_of(ticket.get("group")),
        "assignee": _name_of(ticket.get("assignee")),
        "organization": text_of(organization.get("name")),
        "status": status.lower() if status else None,
    }
    rating = ticket.get("satisfaction_rating")
    return _Ticket(
        ticket_id,
        who,
        status.lower() if status else None,
        stamps["created_at"],
        stamps["updated_at"],
        properties,
        description[:_BODY_CHARS] if description else None,
        rating if isinstance(rating, dict) else None,
    )


def _ticket_event(ticket: _Ticket, name: str, at: dt.datetime, message_id: str) -> Event:
    props = dict(ticket.properties)
    if name == "Ticket Created":
        props["body"] = ticket.body  # the description is the first comment
    return track(ticket.who, name, at, message_id, props)


def _created_id(ticket: _Ticket, at: dt.datetime) -> str:
    return file_message_id(_ZENDESK, f"zendesk.tickets:{ticket.id}:Ticket Created", at)


def _csat(ticket: _Ticket, where: str) -> list[Event]:
    rating = ticket.rating or {}
    score = (text_of(rating.get("score")) or "").lower()
    if score not in _RATINGS:  # offered or unoffered: nobody rated
        return []
    stamp = rating.get("updated_at") or rating.get("created_at")
    at = time_of(stamp, f"{where}.satisfaction_rating.updated_at") if stamp else None
    at = at or ticket.updated_at or ticket.created_at
    if at is None:
        raise RequestError(f"{where}.updated_at", "is required to date the rating")
    rating_id = text_of(rating.get("id")) or score
    props = {
        "ticket_id": ticket.id,
        "score": _RATINGS[score],
        "rating": score.split()[0],
        "comment": text_of(rating.get("comment")),
        "organization": ticket.properties.get("organization"),
    }
    message_id = f"zendesk:{ticket.id}:csat:{rating_id}"
    return [track(ticket.who, "CSAT Submitted", at, message_id, props)]


def _zendesk_trigger(body: dict[str, Any]) -> list[Event]:
    where = "body.ticket"
    ticket = _ticket(body.get("ticket"), where, "trigger")
    hint = text_of(body.get("event"))
    if hint is not None and hint.lower().removeprefix("ticket.") not in _HINTS:
        raise RequestError("body.event", f"must be one of {', '.join(_HINTS)} (got {hint!r})")
    if hint is not None:
        name = _HINTS[hint.lower().removeprefix("ticket.")]
    elif ticket.status == "solved":
        name = "Ticket Solved"
    elif ticket.updated_at is None or ticket.updated_at == ticket.created_at:
        name = "Ticket Created"
    else:
        name = "Ticket Updated"
    if name == "Ticket Created":
        at = ticket.created_at or ticket.updated_at
        if at is None:
            raise RequestError(f"{where}.created_at", "is required")
        events = [_ticket_event(ticket, name, at, _created_id(ticket, at))]
    else:
        if ticket.updated_at is None:
            raise RequestError(f"{where}.updated_at", "is required")
        at = ticket.updated_at
        message_id = f"zendesk:{ticket.id}:{iso(at)}:{name}"
        events = [_ticket_event(ticket, name, at, message_id)]
    return events + _csat(ticket, where)


def _zendesk_event(body: dict[str, Any], kind: str) -> list[Event]:
    topic = kind.removeprefix("zen:event-type:")
    if not topic.startswith("ticket."):
        return []
    event_id = required_text(body, "id", "body")
    at = time_of(body.get("time"), "body.time")
    ticket = _ticket(body.get("detail"), "body.detail", topic)
    current = (text_of(inner(body, "event").get("current")) or ticket.status or "").lower()
    if topic == "ticket.created":
        created = ticket.created_at or at
        return [_ticket_event(ticket, "Ticket Created", created, _created_id(ticket, created))]
    if topic == "ticket.status_changed" and current == "solved":
        name = "Ticket Solved"
    else:
        name = "Ticket Updated"
    return [_ticket_event(ticket, name, at, f"zendesk:{event_id}:{name}")]


def zendesk_events(document: Any) -> Mapped:
    """The canonical events of one Zendesk webhook request.

    Two shapes are accepted. A *trigger or automation* webhook's JSON body is
    written in Zendesk by whoever sets it up; tenure expects the ticket as
    Zendesk's Tickets API returns it (placeholders such as ``{{ticket.id}}``
    fill it in)::

        {"ticket": {"id": 1201, "status": "solved", "priority": "high",
                    "subject": "…", "description": "…", "type": "incident",
                    "tags": ["export", "bug"], "via": {"channel": "web"},
                    "requester": {"id": 361234001, "email": "ada@acme.example",
                                  "external_id": "user_42"},
                    "organization": {"id": 90001, "external_id": "acme", "name": "Acme Corp"},
                    "group": {"name": "Support"}, "assignee": {"name": "Sam Agent"},
                    "satisfaction_rating": {"id": 7, "score": "good", "comment": "…"},
                    "created_at": "2024-03-04T09:15:22Z", "updated_at": "2024-03-05T11:30:00Z"},
         "event": "solved"}

    ``event`` (created, updated or solved) is optional: without it a solved
    ticket is Ticket Solved, one never updated since its creation Ticket
    Created, anything else Ticket Updated. Display values (``"Web Form"``,
    ``"High"``, tags as one space-separated string) are read as the CSV's are.
    A good or bad satisfaction rating is also a CSAT Submitted (5 or 1).

    An *event webhook* (``{"type": "zen:event-type:ticket.created", "id",
    "time", "detail": {…ticket…}, "event": {"current", "previous"}}``) maps
    ticket.created to Ticket Created, ticket.status_changed to solved to
    Ticket Solved, any other ticket event to Ticket Updated; other event types
    are ignored. Its ``detail`` names the requester and organization by Zendesk
    id only, so such events carry the requester's ``zendesk_user_id`` and no
    email, user id or group id.

    Identity as the ``zendesk.tickets`` mapping: the requester's external id is
    the userId, their email and Zendesk id come along. The organization's
    external id, which the CSV lacks, is the event's group id (your account
    id, as the requester's external id is your user id). Neither shape carries
    resolution times, which only the CSV export has.
    """
    body = json_object(document, "body")
    kind = text_of(body.get("type"))
    if kind is not None and kind.startswith("zen:event-type:"):
        events = _zendesk_event(body, kind)
    elif "ticket" in body:
        events = _zendesk_trigger(body)
    else:
        raise RequestError(
            "body.ticket", "is required (a ticket), or send a Zendesk event webhook (type, detail)"
        )
    return Mapped(events, 1, 0 if events else 1)
