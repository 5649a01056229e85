"""Provider webhooks: Stripe, Zendesk and HubSpot notifications into the inbox as canonical events.

Stripe cannot present an API key: ``/v1/webhooks/stripe`` is authenticated by
Stripe's signature alone, with the endpoint's signing secret read from the
environment variable that ``serve.stripe_secret_env`` names (several secrets,
comma-separated, while one is rolled). Without that variable the route is not
enabled and answers 404 saying which variable to set; Stripe retries any
answer but a 2xx for three days, so events sent meanwhile arrive once it is
set. (Not a 503: a 5xx means a server fault, and nothing here is one.)

Zendesk and HubSpot webhooks are admitted with an ``events:write`` API key
(a bearer token or HTTP basic auth, which Zendesk webhooks can send) or with
the provider's own signature, once the variable named by
``serve.zendesk_secret_env`` (the webhook's signing secret) or
``serve.hubspot_secret_env`` (the app's client secret: HubSpot apps cannot
send a key) holds the secret. HubSpot's signature v3 covers the URL HubSpot
called; behind a proxy that is not the URL this server receives, so the
signature may match either the URL as received or ``delivery.public_url``
followed by the same path and query (set it to the public base URL).

The mapping lives in :mod:`tenure.collect.webhooks`; as on the collection
routes, a 200 means the events are committed to the inbox.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from tenure._config_decide import parse_duration
from tenure._config_serve import ServeSettings
from tenure.api._auth import _CHALLENGE, Principal, _basic, _bearer, _presented, require
from tenure.api._errors import ApiError, error_responses
from tenure.collect._http import RequestError, decode_body
from tenure.collect.webhooks import (
    HUBSPOT_SIGNATURE_FIELD,
    SIGNATURE_WINDOW,
    STRIPE_SIGNATURE_FIELD,
    ZENDESK_SIGNATURE_FIELD,
    Mapped,
    SignatureError,
    collected,
    hubspot_events,
    stripe_events,
    verify_hubspot_signature,
    verify_stripe_signature,
    verify_zendesk_signature,
    zendesk_events,
)
from tenure.govern.keys import Scope

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])


class WebhookAccepted(BaseModel):
    """The notifications are understood and their events durably in the inbox."""

    received: int = Field(description="provider notifications in the request")
    accepted: int = Field(description="canonical events stored by this request")
    duplicates: int = Field(
        description="canonical events already stored (a provider's retry or replay)"
    )
    ignored: int = Field(description="notifications of a kind tenure does not record")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"received": 1, "accepted": 2, "duplicates": 0, "ignored": 0}]
        }
    )


class StripeEvent(BaseModel):
    """A Stripe event, as Stripe posts it to a webhook endpoint."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "id": "evt_1PAcmePaid",
                    "object": "event",
                    "type": "invoice.paid",
                    "created": 1715353402,
                    "data": {
                        "object": {
                            "id": "in_1PAcmeMay",
                            "object": "invoice",
                            "customer": "cus_PAcme01",
                            "customer_email": "billing@acme.example",
                            "amount_paid": 24500,
                            "currency": "usd",
                            "number": "ACME-0005",
                            "subscription": "sub_1OkTeamAcme",
                            "status_transitions": {"paid_at": 1715353402},
                        }
                    },
                }
            ]
        },
    )

    id: str = Field(description="the event id (evt_…): a replay of it is a duplicate")
    type: str = Field(description="e.g. customer.subscription.created; unmapped types are ignored")
    created: int = Field(description="Unix seconds")
    data: dict[str, Any] = Field(description="object, and previous_attributes for updates")


class ZendeskTicketWebhook(BaseModel):
    """A Zendesk trigger's body (the ticket, as the Tickets API shows it), or an event webhook."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "ticket": {
                        "id": 1201,
                        "status": "open",
                        "priority": "high",
                        "subject": "Cannot export the usage report",
                        "via": {"channel": "web"},
                        "requester": {
                            "id": 361234001,
                            "email": "ada@acme.example",
                            "external_id": "user_42",
                        },
                        "organization": {"id": 90001, "external_id": "acme", "name": "Acme Corp"},
                        "created_at": "2024-03-04T09:15:22Z",
                        "updated_at": "2024-03-04T09:15:22Z",
                    }
                },
                {
                    "type": "zen:event-type:ticket.status_changed",
                    "id": "cbe4028c-7239-495d-b020-f22348516046",
                    "time": "2024-03-05T11:30:00Z",
                    "detail": {"id": "1201", "requester_id": "361234001", "status": "SOLVED"},
                    "event": {"current": "SOLVED", "previous": "OPEN"},
                },
            ]
        },
    )

    ticket: dict[str, Any] | None = Field(default=None, description="a trigger's ticket")
    event: Any = Field(default=None, description="created, updated or solved (optional)")
    type: str | None = Field(default=None, description="an event webhook's zen:event-type:…")
    detail: dict[str, Any] | None = Field(default=None, description="an event webhook's ticket")


class HubSpotNotification(BaseModel):
    """One notification of a HubSpot webhook subscription (v3); HubSpot posts an array."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "eventId": 3816279340,
                    "subscriptionId": 25,
                    "portalId": 33,
                    "occurredAt": 1714640700000,
                    "subscriptionType": "deal.propertyChange",
                    "attemptNumber": 0,
                    "objectId": 7003,
                    "propertyName": "dealstage",
                    "propertyValue": "closedwon",
                    "changeSource": "CRM",
                }
            ]
        },
    )

    eventId: int | str
    subscriptionType: str = Field(description="e.g. contact.creation, deal.propertyChange")
    occurredAt: int = Field(description="Unix milliseconds")
    objectId: int | str | None = None
    portalId: int | None = None
    propertyName: str | None = None
    propertyValue: str | None = None


def _body_doc(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
            "description": description,
        }
    }


async def _store(
    request: Request, source: str, document: Any, mapper: Callable[[Any], Mapped]
) -> WebhookAccepted:
    state = request.app.state.tenure
    try:
        mapped = mapper(document)
    except RequestError:
        state.metrics.events.labels("rejected").inc()
        raise
    events = collected(mapped.events, state.project.clock())
    with state.tracer.start_as_current_span("webhook.write") as span:
        span.set_attribute("tenure.events", len(events))
        span.set_attribute("tenure.source", source)
        written = await state.writer.write(source, events)
    state.metrics.events.labels("accepted").inc(written.accepted)
    state.metrics.events.labels("duplicate").inc(written.duplicates)
    return WebhookAccepted(
        received=mapped.received,
        accepted=written.accepted,
        duplicates=written.duplicates,
        ignored=mapped.ignored,
    )


def _secrets(variable: str) -> list[bytes]:
    """The secrets in the environment variable *variable*: several, comma-separated, while one
    is rolled."""
    value = os.environ.get(variable, "")
    return [s.strip().encode() for s in value.split(",") if s.strip()]


def _stripe_secrets(variable: str) -> list[bytes]:
    secrets = _secrets(variable)
    if not secrets:
        raise ApiError(
            404,
            "not_configured",
            f"Stripe webhooks are not enabled: set the environment variable {variable} to "
            "the endpoint's signing secret (whsec_…, in Stripe's dashboard under Webhooks) "
            "and restart",
        )
    return secrets


@router.post(
    "/v1/webhooks/stripe",
    response_model=WebhookAccepted,
    responses=error_responses(400, 404, 413),
    openapi_extra=_body_doc(
        StripeEvent.model_json_schema(),
        "The raw event Stripe posts, signed in the Stripe-Signature header",
    ),
    summary="Receive a Stripe event (authenticated by Stripe's signature, not an API key)",
)
async def stripe(request: Request) -> WebhookAccepted:
    state = request.app.state.tenure
    settings = state.project.config.serve
    secrets = _stripe_secrets(settings.stripe_secret_env)
    header = request.headers.get("stripe-signature")
    if not header:
        raise ApiError(
            400,
            "invalid_signature",
            "is missing (Stripe signs every event it sends)",
            field=STRIPE_SIGNATURE_FIELD,
        )
    body = await request.body()
    try:
        verify_stripe_signature(
            body,
            header,
            secrets,
            state.project.clock(),
            parse_duration(settings.stripe_tolerance),
        )
    except SignatureError as error:
        state.metrics.events.labels("rejected").inc()
        raise ApiError(400, error.problem.value, error.message, field=error.field) from None
    document = decode_body(body, None, settings.max_batch_bytes)
    return await _store(request, "stripe", document, stripe_events)


# --------------------------------------------------------------------------- Zendesk and HubSpot

_Verifier = Callable[[Request, bytes, str, list[bytes], dt.datetime], None]


@dataclass(frozen=True, slots=True)
class _Signer:
    """A provider whose webhooks may be signed instead of carrying an API key."""

    provider: str
    header: str  # that carries the signature
    field: str  # the same, as an error's field names it
    setting: str  # of serve, naming the variable that holds the secret
    secret: str  # what the secret is, in the provider's words
    verify: _Verifier


def _hubspot_urls(request: Request) -> list[str]:
    """The URLs HubSpot may have called: as the server received it, and under the public URL.

    The path is taken as received (``raw_path``, escapes kept), since HubSpot
    signs the URL it called, not its decoded form. Behind a proxy the first
    has the proxy's scheme and host wrong; ``delivery.public_url`` (the base
    the world reaches this server at) followed by the same path and query is
    then the one HubSpot called.
    """
    scope = request.scope
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    target += f"?{query}" if query else ""
    public = request.app.state.tenure.project.config.delivery.public_url.rstrip("/")
    return [f"{request.url.scheme}://{request.url.netloc}{target}", f"{public}{target}"]


def _verify_hubspot(
    request: Request, body: bytes, signature: str, secrets: list[bytes], now: dt.datetime
) -> None:
    timestamp = request.headers.get("x-hubspot-request-timestamp", "")
    urls = _hubspot_urls(request)
    verify_hubspot_signature(request.method, urls, body, signature, timestamp, secrets, now)


def _verify_zendesk(
    request: Request, body: bytes, signature: str, secrets: list[bytes], now: dt.datetime
) -> None:
    timestamp = request.headers.get("x-zendesk-webhook-signature-timestamp", "")
    verify_zendesk_signature(body, signature, timestamp, secrets, now)


_HUBSPOT = _Signer(
    "HubSpot",
    "X-HubSpot-Signature-v3",
    HUBSPOT_SIGNATURE_FIELD,
    "hubspot_secret_env",
    "the HubSpot app's client secret",
    _verify_hubspot,
)
_ZENDESK = _Signer(
    "Zendesk",
    "X-Zendesk-Webhook-Signature",
    ZENDESK_SIGNATURE_FIELD,
    "zendesk_secret_env",
    "the Zendesk webhook's signing secret",
    _verify_zendesk,
)


def _key_or_signature(signer: _Signer) -> Callable[..., Awaitable[Principal | None]]:
    """A dependency that admits a request with an ``events:write`` key or the provider's signature.

    A valid signature admits the request (without a principal: nothing to
    rate-limit by, as for Stripe); failing that, a presented key is judged as
    :func:`require` judges it (401, 403, 429). Without a valid one of either
    the answer is 401, naming the signature header when one was sent: a
    signature that does not verify, or cannot be checked because the secret's
    variable is not set.
    """
    by_key = require(Scope.EVENTS_WRITE)
    signed_by = APIKeyHeader(
        name=signer.header,
        scheme_name=f"{signer.provider}Signature",
        auto_error=False,
        description=f"{signer.provider}'s signature of the request, checked with "
        f"{signer.secret} (from the environment variable `serve.{signer.setting}` names); "
        "an alternative to an API key",
    )

    async def dependency(
        request: Request,
        _b: object = Depends(_bearer),
        _u: object = Depends(_basic),
        _s: object = Depends(signed_by),
    ) -> Principal | None:
        state = request.app.state.tenure
        variable = getattr(state.project.config.serve, signer.setting)
        signature = request.headers.get(signer.header)
        refused: ApiError | None = None
        if signature is not None:
            secrets = _secrets(variable)
            if not secrets:
                refused = ApiError(
                    401, "unauthorized",
                    f"cannot be checked: set the environment variable {variable} to "
                    f"{signer.secret} and restart, or send an events:write API key",
                    field=signer.field, headers=_CHALLENGE,
                )  # fmt: skip
            else:
                body = await request.body()
                try:
                    signer.verify(request, body, signature, secrets, state.project.clock())
                except SignatureError as error:
                    refused = ApiError(
                        401, error.problem.value, error.message,
                        field=error.field, headers=_CHALLENGE,
                    )  # fmt: skip
                else:
                    return None
        if _presented(request) is not None:
            return await by_key(request)
        if refused is not None:
            state.metrics.events.labels("rejected").inc()
            raise refused
        raise ApiError(
            401, "unauthorized",
            f"an API key is required, or {signer.provider}'s signature in {signer.header} "
            f"(checked with {signer.secret}, from the environment variable {variable})",
            headers=_CHALLENGE,
        )  # fmt: skip

    dependency.__name__ = f"events_write_or_{signer.provider.lower()}_signature"
    dependency.scope = Scope.EVENTS_WRITE  # type: ignore[attr-defined]  # as require's, for tests
    return dependency


async def _received(
    request: Request, source: str, mapper: Callable[[Any], Mapped]
) -> WebhookAccepted:
    settings = request.app.state.tenure.project.config.serve
    body = await request.body()
    document = decode_body(body, request.headers.get("content-encoding"), settings.max_batch_bytes)
    return await _store(request, source, document, mapper)


_KEYED_ERRORS = error_responses(400, 401, 403, 413, 429)


def _auth_doc(signer: _Signer, timestamp: str, signed: str) -> str:
    default = ServeSettings.model_fields[signer.setting].default
    minutes = int(SIGNATURE_WINDOW.total_seconds() // 60)
    return (
        "Authenticated by either of:\n\n"
        "* an API key with scope `events:write` (bearer token, or HTTP basic user name);\n"
        f"* {signer.provider}'s signature, checked with {signer.secret} from the environment "
        f"variable `serve.{signer.setting}` names (`{default}` by default; until it is set, "
        f"signed requests without a key are refused): `{signer.header}` with `{timestamp}`, "
        f"{signed}.\n\n"
        f"A timestamp more than {minutes} minutes from the server's clock is refused (a "
        "replay, or a clock is wrong). A 401 for a signature names the header in `field`."
    )


@router.post(
    "/v1/webhooks/zendesk",
    response_model=WebhookAccepted,
    responses=_KEYED_ERRORS,
    openapi_extra=_body_doc(
        ZendeskTicketWebhook.model_json_schema(),
        "A trigger's ticket JSON, or a Zendesk event webhook (zen:event-type:ticket.…)",
    ),
    summary="Receive a Zendesk ticket webhook (an API key, or Zendesk's signature)",
    description=_auth_doc(
        _ZENDESK,
        "X-Zendesk-Webhook-Signature-Timestamp",
        "base64 of HMAC-SHA256 of the timestamp followed by the raw body",
    ),
)
async def zendesk(
    request: Request,
    _: Principal | None = Depends(_key_or_signature(_ZENDESK)),  # noqa: B008
) -> WebhookAccepted:
    return await _received(request, "zendesk", zendesk_events)


@router.post(
    "/v1/webhooks/hubspot",
    response_model=WebhookAccepted,
    responses=_KEYED_ERRORS,
    openapi_extra=_body_doc(
        {"type": "array", "items": HubSpotNotification.model_json_schema()},
        "The notifications of HubSpot webhook subscriptions (v3), as HubSpot posts them",
    ),
    summary="Receive HubSpot webhook notifications (an API key, or HubSpot's signature v3)",
    description=_auth_doc(
        _HUBSPOT,
        "X-HubSpot-Request-Timestamp",
        "base64 of HMAC-SHA256 of method, URL, raw body and timestamp (signature v3); the URL "
        "may be the one this server received or `delivery.public_url` followed by its path",
    ),
)
async def hubspot(
    request: Request,
    _: Principal | None = Depends(_key_or_signature(_HUBSPOT)),  # noqa: B008
) -> WebhookAccepted:
    return await _received(request, "hubspot", hubspot_events)
