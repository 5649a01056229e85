"""The in-app feed: a user's messages, and marking them seen or dismissed.

The delivery worker's in-app channel writes ``in_app_messages``; the product
reads a user's feed here and reports what the user did with a message. Each
report is also an event in the inbox — ``Message Opened`` when the user first
sees the message, ``Message Dismissed`` when they dismiss it — carrying the
decision id, so outcomes attribute back to the decision that sent it. The
event and the status change commit in one transaction, and the event's
message id is derived from the message, so a retried report adds nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from tenure.api._auth import Principal, require
from tenure.api._errors import error_responses
from tenure.api._pii import PLAIN
from tenure.collect._http import CollectedEvent
from tenure.collect._inbox import write_events
from tenure.deliver._outbox import begin_write
from tenure.deliver._sent import EVENT_SOURCE
from tenure.errors import NotFoundError
from tenure.govern.keys import Scope
from tenure.store._tables import in_app_messages, outbox

__all__ = ["EVENT_SOURCE", "router"]

router = APIRouter(tags=["in-app feed"])

USER_ID = Annotated[
    str,
    PathParam(min_length=1, max_length=200, pattern=PLAIN, description="the product's user id"),
]
MESSAGE_ID = Annotated[
    int, PathParam(ge=1, le=2**63 - 1, description="the message's id (from the feed)")
]

_Status = Literal["new", "seen", "dismissed"]


_MESSAGE_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "account_id": "acme",
    "title": "Tips for Acme",
    "body": "You logged in 3 times this month.",
    "status": "new",
    "created_at": "2024-06-01T12:00:00Z",
    "seen_at": None,
    "decision_id": "d_5f0c9d2e7a4b",
    "campaign": "nurture",
}


class InAppMessage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_MESSAGE_EXAMPLE]})

    id: int
    account_id: str
    title: str
    body: str
    status: _Status
    created_at: dt.datetime
    seen_at: dt.datetime | None = None
    decision_id: str | None = Field(default=None, description="the decision that sent it")
    campaign: str | None = None


class Feed(BaseModel):
    """A user's in-app messages, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u1",
                    "messages": [_MESSAGE_EXAMPLE],
                }
            ]
        }
    )

    user_id: str
    messages: list[InAppMessage]


class Marked(BaseModel):
    """The message after the report, and the events it added to the inbox."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": {
                        **_MESSAGE_EXAMPLE,
                        "status": "seen",
                        "seen_at": "2024-06-01T12:05:00Z",
                    },
                    "events": ["Message Opened"],
                }
            ]
        }
    )

    message: InAppMessage
    events: list[str] = Field(description="events emitted (none when nothing changed)")


def _query() -> Any:
    return select(
        in_app_messages.c.id,
        in_app_messages.c.account_id,
        in_app_messages.c.user_id,
        in_app_messages.c.title,
        in_app_messages.c.body,
        in_app_messages.c.status,
        in_app_messages.c.created_at,
        in_app_messages.c.seen_at,
        in_app_messages.c.outbox_id,
        outbox.c.decision_id,
        outbox.c.campaign,
    ).join(outbox, outbox.c.id == in_app_messages.c.outbox_id)


def _message(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "title": row.title,
        "body": row.body,
        "status": row.status,
        "created_at": row.created_at,
        "seen_at": row.seen_at,
        "decision_id": row.decision_id,
        "campaign": row.campaign,
    }


@router.get(
    "/v1/users/{user_id}/messages",
    response_model=Feed,
    responses=error_responses(401, 403, 422, 429),
    summary="A user's in-app messages",
)
def user_messages(
    request: Request,
    user_id: USER_ID,
    status: Annotated[_Status | None, Query(description="only messages in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="messages at most")] = 50,
    _: Principal = Depends(require(Scope.DECIDE)),  # noqa: B008
) -> dict[str, Any]:
    query = _query().where(in_app_messages.c.user_id == user_id)
    if status is not None:
        query = query.where(in_app_messages.c.status == status)
    query = query.order_by(in_app_messages.c.created_at.desc(), in_app_messages.c.id.desc())
    with request.app.state.tenure.project.store.connect() as connection:
        rows = connection.execute(query.limit(limit)).all()
    return {"user_id": user_id, "messages": [_message(r) for r in rows]}


def _event(row: Any, name: str, user_id: str, at: dt.datetime) -> CollectedEvent:
    """A canonical messaging event about the in-app message *row*, idempotent by its id."""
    properties = {"channel": "in_app", "message_id": str(row.outbox_id)}
    if row.decision_id:
        properties["decision_id"] = row.decision_id
    if row.campaign:
        properties["campaign"] = row.campaign
    slug = name.removeprefix("Message ").lower()
    message_id = f"in_app-{row.outbox_id}-{slug}"
    stamp = at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    event = {
        "type": "track",
        "event": name,
        "userId": user_id,
        "messageId": message_id,
        "timestamp": stamp,
        "receivedAt": stamp,
        "properties": properties,
        # no groupId: tenure's account id is not a group id of the product, and stitching
        # would take it for a new account; the user places the event in their account
    }
    return CollectedEvent(message_id, orjson.dumps(event))


def _mark(
    connection: Connection, user_id: str, message_id: int, to: _Status, at: dt.datetime
) -> tuple[dict[str, Any], list[str]]:
    row = connection.execute(
        _query().where(in_app_messages.c.id == message_id, in_app_messages.c.user_id == user_id)
    ).one_or_none()
    if row is None:  # another user's message is as unknown as a missing one
        raise NotFoundError(f"user {user_id!r} has no in-app message {message_id}")
    names: list[str] = []
    changes: dict[str, Any] = {}
    if row.status == "new":
        names.append("Message Opened")  # a dismissed message was seen too
        changes["seen_at"] = at
    if to == "dismissed" and row.status != "dismissed":
        names.append("Message Dismissed")
    if names:
        changes["status"] = to
        connection.execute(
            update(in_app_messages).where(in_app_messages.c.id == message_id).values(**changes)
        )
        events = [_event(row, name, user_id, at) for name in names]
        write_events(connection, [(EVENT_SOURCE, events)], at)
    current = connection.execute(_query().where(in_app_messages.c.id == message_id)).one()
    return _message(current), names


def _marker(to: _Status, summary: str, description: str) -> None:
    def route(
        request: Request,
        user_id: USER_ID,
        message_id: MESSAGE_ID,
        _: Principal = Depends(require(Scope.DECIDE)),  # noqa: B008
    ) -> dict[str, Any]:
        project = request.app.state.tenure.project
        at = project.clock()
        with begin_write(project.store) as connection:
            message, names = _mark(connection, user_id, message_id, to, at)
        return {"message": message, "events": names}

    route.__name__ = f"mark_{to}"
    router.add_api_route(
        f"/v1/users/{{user_id}}/messages/{{message_id}}/{to}",
        route,
        methods=["POST"],
        response_model=Marked,
        responses=error_responses(401, 403, 404, 422, 429),
        summary=summary,
        description=description,
    )


_marker(
    "seen",
    "The user saw an in-app message",
    "Marks a new message seen and emits `Message Opened` with its `decision_id`. "
    "Marking it again changes nothing and emits nothing.",
)
_marker(
    "dismissed",
    "The user dismissed an in-app message",
    "Marks the message dismissed and emits `Message Dismissed` (and `Message Opened` first "
    "if it was still new) with its `decision_id`.",
)
