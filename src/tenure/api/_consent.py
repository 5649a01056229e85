"""Consent, erasure, and the unsubscribe links of emails.

Consent statements are about typed identifiers (:mod:`tenure.govern.consent`).
Changes made through the API are audited with the key as actor; the audit
log, which cannot be rewritten, names people by pseudonym only.

``/unsubscribe/{token}`` needs no key: the signed token is the authority. It
is the URL the email channel puts in ``List-Unsubscribe`` (``delivery.public_url``
+ ``/unsubscribe/`` + token), with ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``, so a mail client's one-click unsubscribe is a
``POST`` to it (RFC 8058). A ``GET`` only shows a page with a button that
posts: mail software and link scanners fetch URLs found in mail, and RFC 8058
exists because such fetches unsubscribed people who never asked to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.responses import HTMLResponse, Response

from tenure._config_decide import Channel
from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, JsonResponse, error_responses
from tenure.api._feed import EVENT_SOURCE
from tenure.api._pii import IDENTIFIER_PATTERN, masker_of
from tenure.collect._http import CollectedEvent
from tenure.collect._inbox import write_events
from tenure.collect._suppress import erasure_key
from tenure.decide import unsubscribe_secret
from tenure.deliver._outbox import begin_write
from tenure.events import CATALOG
from tenure.govern.consent import (
    ALL_CHANNELS,
    ConsentReason,
    InvalidTokenError,
    consent_history,
    may_contact,
    record_consent,
    verify_unsubscribe_token,
)
from tenure.govern.erasure import LAKE_DONE, LAKE_PENDING, erase, holders, normalize_identifier
from tenure.govern.keys import Scope
from tenure.govern.pii import Pseudonymizer
from tenure.store import append_audit
from tenure.store._erasures import ErasureRequest as StoredErasure
from tenure.store._erasures import LakeStatus, get_erasure_request

__all__ = ["router"]

router = APIRouter(tags=["consent and erasure"])

_CHANNEL = Literal["email", "in_app", "webhook", "csm_task", "all"]
_UNSUBSCRIBED = "Message Unsubscribed"


def _identifier(value: str, field: str) -> str:
    try:
        return normalize_identifier(value)
    except ValueError as error:
        raise ApiError(422, "invalid_request", str(error), field=field) from None


# --------------------------------------------------------------- consent
class Statement(BaseModel):
    channel: str = Field(description="a channel, or all")
    granted: bool
    reason: str = Field(description="unsubscribe, preference, erasure or import")
    source: str = Field(description="who or what made it: key:<id>, unsubscribe link, …")
    at: dt.datetime


class ChannelConsent(BaseModel):
    channel: str
    may_contact: bool = Field(description="whether this identifier may get the channel now")
    why: str


_STATEMENT: dict[str, Any] = {
    "channel": "email",
    "granted": False,
    "reason": "unsubscribe",
    "source": "unsubscribe link",
    "at": "2024-06-01T12:00:00Z",
}


class ConsentState(BaseModel):
    """An identifier's consent now, per channel, and every statement made about it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "identifier": "email:dee@acme.com",
                    "channels": [
                        {
                            "channel": "email",
                            "may_contact": False,
                            "why": "email:dee@acme.com withdrew email",
                        },
                        {
                            "channel": "in_app",
                            "may_contact": True,
                            "why": "no statement; in_app allowed by default",
                        },
                    ],
                    "history": [_STATEMENT],
                }
            ]
        }
    )

    identifier: str
    channels: list[ChannelConsent]
    history: list[Statement]


class ConsentChange(BaseModel):
    """A consent statement to record."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "identifier": "email:dee@acme.com",
                    "channel": "email",
                    "granted": False,
                    "reason": "preference",
                }
            ]
        },
    )

    identifier: str = Field(min_length=3, max_length=320, pattern=IDENTIFIER_PATTERN)
    channel: _CHANNEL = Field(description="a channel, or all of them")
    granted: bool
    reason: Literal["preference", "unsubscribe", "import"] = Field(
        default="preference", description="erasures go through POST /v1/erasure"
    )


def _consent_state(
    connection: Connection, identifier: str, defaults: dict[str, bool]
) -> dict[str, Any]:
    channels = []
    for channel in Channel:
        allowed, why = may_contact(connection, [identifier], channel.value, defaults=defaults)
        channels.append({"channel": channel.value, "may_contact": allowed, "why": why})
    history = [
        {
            "channel": s.channel,
            "granted": s.granted,
            "reason": s.reason,
            "source": s.source,
            "at": s.at,
        }
        for s in consent_history(connection, identifier)
    ]
    return {"identifier": identifier, "channels": channels, "history": history}


def _defaults(request: Request) -> dict[str, bool]:
    settings = request.app.state.tenure.project.config.decide
    return {str(k): v for k, v in settings.default_consent.items()}


@router.get(
    "/v1/consent/{identifier:path}",
    response_model=ConsentState,
    responses=error_responses(401, 403, 422, 429),
    summary="An identifier's consent per channel, and its history",
)
def get_consent(
    request: Request,
    identifier: Annotated[
        str,
        PathParam(
            min_length=3,
            max_length=320,
            pattern=IDENTIFIER_PATTERN,
            description="a typed identifier, e.g. `email:dee@acme.com`",
        ),
    ],
    _: Principal = Depends(require(Scope.CONSENT_READ)),  # noqa: B008
) -> dict[str, Any]:
    wanted = _identifier(identifier, "path.identifier")
    with request.app.state.tenure.project.store.connect() as connection:
        return _consent_state(connection, wanted, _defaults(request))


@router.post(
    "/v1/consent",
    response_model=ConsentState,
    responses=error_responses(401, 403, 422, 429),
    summary="Record a consent statement (grant or withdraw a channel, or all)",
)
def post_consent(
    request: Request,
    change: ConsentChange,
    principal: Principal = Depends(require(Scope.CONSENT_WRITE)),  # noqa: B008
) -> dict[str, Any]:
    project = request.app.state.tenure.project
    wanted = _identifier(change.identifier, "body.identifier")
    at = project.clock()
    with begin_write(project.store) as connection:
        record_consent(
            connection, wanted, change.channel,
            granted=change.granted, reason=ConsentReason(change.reason), source=principal.actor,
            at=at,
        )  # fmt: skip
        append_audit(
            connection,
            at=at,
            actor=principal.actor,
            action="consent.update",
            target=f"identifier:{masker_of(request).identifier(wanted)}",
            detail={"channel": change.channel, "granted": change.granted, "reason": change.reason},
        )
        return _consent_state(connection, wanted, _defaults(request))


# --------------------------------------------------------------- erasure
class ErasureRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"identifier": "email:dee@acme.com"}]},
    )

    identifier: str = Field(min_length=3, max_length=320, pattern=IDENTIFIER_PATTERN)


_LAKE = Field(
    description="`pending` until the batch erasure step has removed the person from the "
    "Parquet lake and the warehouse, then `done`"
)


class ErasureDone(BaseModel):
    """What the erasure did in the operational store, and what is left to the batch side."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "er_5b0f3c2a9d4e7f61",
                    "identifier": "email:dee@acme.com",
                    "identifiers": ["email:dee@acme.com", "profile:p_4f1c", "user_id:u1"],
                    "consent": "withdrawn on all channels for each identifier (reason erasure)",
                    "accounts": ["acme"],
                    "contacts_removed": 1,
                    "outbox_cancelled": 2,
                    "in_app_removed": 1,
                    "inbox_redacted": 3,
                    "lake": "pending",
                    "lake_detail": "the Parquet lake and the warehouse still hold …",
                }
            ]
        }
    )

    request_id: str = Field(description="the erasure request: `GET /v1/erasure/{request_id}`")
    identifier: str
    identifiers: list[str] = Field(description="the person's identifiers that were found")
    consent: str
    accounts: list[str] = Field(description="accounts whose published contacts lost the person")
    contacts_removed: int
    outbox_cancelled: int = Field(description="queued actions to the person, now cancelled")
    in_app_removed: int
    inbox_redacted: int = Field(description="inbox events not yet loaded, now pseudonymized")
    lake: Literal["pending", "done"] = _LAKE
    lake_detail: str = Field(description="what the batch side still has to do, or did")


class ErasureStatus(BaseModel):
    """An erasure request and how far the batch side is with it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "er_5b0f3c2a9d4e7f61",
                    "requested_at": "2024-06-01T12:00:00Z",
                    "requested_by": "key:k7f3a1",
                    "lake": "done",
                    "lake_done_at": "2024-06-02T02:00:00Z",
                    "lake_detail": "the batch erasure step removed this person's events …",
                    "result": {"events_removed": 412, "event_files": 9, "profiles": 1},
                }
            ]
        }
    )

    request_id: str
    requested_at: dt.datetime
    requested_by: str
    lake: Literal["pending", "done"] = _LAKE
    lake_done_at: dt.datetime | None = Field(description="when the batch step finished it")
    lake_detail: str
    result: dict[str, int] = Field(
        description="what the batch step removed (counts of the run that applied it)"
    )


@router.post(
    "/v1/erasure",
    response_model=ErasureDone,
    responses=error_responses(401, 403, 422, 429),
    summary="Erase a person from the operational store (admin only)",
)
def post_erasure(
    request: Request,
    body: ErasureRequest,
    principal: Principal = Depends(require(Scope.ERASURE)),  # noqa: B008
) -> dict[str, Any]:
    project = request.app.state.tenure.project
    wanted = _identifier(body.identifier, "body.identifier")
    with begin_write(project.store) as connection:
        report = erase(
            connection, wanted, masker=masker_of(request), at=project.clock(),
            actor=principal.actor, key=erasure_key(project),
        )  # fmt: skip
    return {
        "request_id": report.request_id,
        "identifier": report.identifier,
        "identifiers": list(report.identifiers),
        "consent": "withdrawn on all channels for each identifier (reason erasure)",
        "accounts": list(report.accounts),
        "contacts_removed": report.contacts_removed,
        "outbox_cancelled": report.outbox_cancelled,
        "in_app_removed": report.in_app_removed,
        "inbox_redacted": report.inbox_redacted,
        "lake": report.lake.value,
        "lake_detail": LAKE_PENDING,
    }


def _status(found: StoredErasure) -> dict[str, Any]:
    done = found.lake_status is LakeStatus.DONE
    return {
        "request_id": found.id,
        "requested_at": found.requested_at,
        "requested_by": found.requested_by,
        "lake": found.lake_status.value,
        "lake_done_at": found.lake_done_at,
        "lake_detail": LAKE_DONE if done else LAKE_PENDING,
        "result": found.result,
    }


@router.get(
    "/v1/erasure/{request_id}",
    response_model=ErasureStatus,
    responses=error_responses(401, 403, 404, 422, 429),
    summary="An erasure request: whether the batch step has cleared the lake (admin only)",
)
def get_erasure(
    request: Request,
    request_id: Annotated[
        str,
        PathParam(
            max_length=40,
            pattern=r"^er_[0-9a-f]{1,37}$",
            description="the `request_id` that `POST /v1/erasure` answered",
        ),
    ],
    _: Principal = Depends(require(Scope.ERASURE)),  # noqa: B008
) -> dict[str, Any]:
    with request.app.state.tenure.project.store.connect() as connection:
        return _status(get_erasure_request(connection, request_id))


# ----------------------------------------------------------- unsubscribe
class Unsubscribed(BaseModel):
    """The opt-out is recorded."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"unsubscribed": True, "channel": "email", "events": [_UNSUBSCRIBED]}]
        }
    )

    unsubscribed: bool = True
    channel: str = Field(description="the channel the link unsubscribes from (or all)")
    events: list[str] = Field(description="events emitted into the inbox")


TOKEN = Annotated[
    str,
    PathParam(
        max_length=2000, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$",
        description="the signed token of the unsubscribe link: base64url text, a dot, "
        "its base64url HMAC-SHA256",
    ),
]  # fmt: skip

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font:inherit;padding:.5rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=body)


def _html_example(title: str) -> dict[str, Any]:
    return {"text/html": {"schema": {"type": "string"}, "example": _page(title, "<p>…</p>")}}


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error responses of a route whose success is HTML: the errors are still JSON."""
    return {
        status: {
            "description": response["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for status, response in error_responses(*statuses).items()
    }


def _verified(request: Request, token: str) -> tuple[str, str]:
    try:
        identifier, channel = verify_unsubscribe_token(
            token, unsubscribe_secret(request.app.state.tenure.project)
        )
    except InvalidTokenError as error:
        raise ApiError(400, "invalid_request", str(error), field="path.token") from None
    except ValueError:  # base64 of text that is not ASCII
        raise ApiError(
            400, "invalid_request", "the unsubscribe link is damaged (not base64)",
            field="path.token",
        ) from None  # fmt: skip
    try:
        return normalize_identifier(identifier), channel
    except ValueError:
        raise ApiError(
            400, "invalid_request", "the unsubscribe link names no identifier", field="path.token"
        ) from None


def _unsubscribe_event(
    connection: Connection,
    identifier: str,
    channel: str,
    token: str,
    at: dt.datetime,
    masker: Pseudonymizer,
) -> CollectedEvent | None:
    """``Message Unsubscribed`` for the person behind *identifier*, when the catalog allows it."""
    spec = CATALOG.get(_UNSUBSCRIBED)
    allowed = next((p.choices for p in spec.properties if p.name == "channel"), ()) if spec else ()
    if spec is None or channel not in allowed:
        return None
    found = holders(connection, identifier)
    contact = found[0].contact if found else None
    # one event per link: clicking it twice is a duplicate, not a second opt-out
    message_id = "unsubscribe-" + hashlib.sha256(token.encode()).hexdigest()[:32]
    stamp = at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    kind, _, value = identifier.partition(":")
    person: dict[str, Any] = {}
    if contact is not None and contact.user_id:
        person["userId"] = contact.user_id
    elif kind == "user_id":
        person["userId"] = value
    else:  # nobody published holds it: a pseudonymous id, the email stays in the traits
        person["anonymousId"] = masker.identifier(identifier)
    # no groupId: tenure's account id is not a group id of the product, and stitching
    # would take it for a new account; the person places the event in their account
    context: dict[str, Any] = {}
    if kind == "email":
        context["traits"] = {"email": value}
    event = {
        "type": "track",
        "event": _UNSUBSCRIBED,
        **person,
        "messageId": message_id,
        "timestamp": stamp,
        "receivedAt": stamp,
        "properties": {"channel": channel},
        "context": context,
    }
    return CollectedEvent(message_id, orjson.dumps(event))


def _unsubscribe(request: Request, token: str) -> dict[str, Any]:
    identifier, channel = _verified(request, token)
    project = request.app.state.tenure.project
    masker = masker_of(request)
    at = project.clock()
    with begin_write(project.store) as connection:
        record_consent(
            connection, identifier, channel,
            granted=False, reason=ConsentReason.UNSUBSCRIBE, source="unsubscribe link", at=at,
        )  # fmt: skip
        append_audit(
            connection,
            at=at,
            actor="unsubscribe link",
            action="consent.update",
            target=f"identifier:{masker.identifier(identifier)}",
            detail={"channel": channel, "granted": False, "reason": "unsubscribe"},
        )
        event = _unsubscribe_event(connection, identifier, channel, token, at, masker)
        if event is not None:
            write_events(connection, [(EVENT_SOURCE, [event])], at)
    return {
        "unsubscribed": True,
        "channel": channel,
        "events": [_UNSUBSCRIBED] if event is not None else [],
    }


def _channel_words(channel: str) -> str:
    return "all messages" if channel == ALL_CHANNELS else f"{channel.replace('_', '-')} messages"


@router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses={
        200: {"description": "A page asking to confirm", "content": _html_example("Unsubscribe")},
        **_json_errors(400, 422),
    },
    summary="The unsubscribe page of an email's link (no key: the token is signed)",
    description=(
        "Shows what the link unsubscribes from and a button that confirms with a `POST` to the "
        "same URL. A `GET` changes nothing: mail software fetches links on its own."
    ),
)
def unsubscribe_page(request: Request, token: TOKEN) -> Response:
    _, channel = _verified(request, token)
    body = (
        f"<p>Stop receiving {html.escape(_channel_words(channel))} from us?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return HTMLResponse(_page("Unsubscribe", body))


@router.post(
    "/unsubscribe/{token}",
    response_model=Unsubscribed,
    responses={
        200: {
            "description": "The opt-out is recorded (JSON; HTML when the client accepts only "
            "or prefers `text/html`, as the page's button does)",
            "content": _html_example("You are unsubscribed"),
        },
        **error_responses(400, 422),
    },
    summary="Unsubscribe (RFC 8058 one-click; no key: the token is signed)",
    description=(
        "What a mail client's one-click unsubscribe posts (`List-Unsubscribe=One-Click`); "
        "the body is not needed. Records the opt-out (reason `unsubscribe`) and emits "
        "`Message Unsubscribed` into the inbox."
    ),
)
def unsubscribe(request: Request, token: TOKEN) -> Response:
    done = _unsubscribe(request, token)
    if _wants_html(request.headers.get("accept", "")):
        words = html.escape(_channel_words(done["channel"]))
        return HTMLResponse(
            _page("You are unsubscribed", f"<p>You will not receive {words} from us again.</p>")
        )
    return JsonResponse(Unsubscribed(**done).model_dump())


def _wants_html(accept: str) -> bool:
    """Whether an Accept header asks for HTML before JSON (a browser's form post)."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/html" not in kinds:
        return False
    return "application/json" not in kinds or kinds.index("text/html") < kinds.index(
        "application/json"
    )
