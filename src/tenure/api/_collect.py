"""The Segment-compatible collection routes: ``/v1/batch`` and the single calls.

Bodies are read raw and checked by :mod:`tenure.collect._http` (faster than a
model per event, and every failure names its place); the pydantic models
below document the contract in OpenAPI. A 200 means every event of the
request is committed to the inbox.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from tenure.api._auth import Principal, require
from tenure.api._errors import error_responses
from tenure.collect._http import RequestError, decode_body, events_of
from tenure.govern.keys import Scope

__all__ = ["router"]

router = APIRouter(tags=["collection"])

#: Where events from this API go in the lake (its ``source`` column).
HTTP_SOURCE = "http"

_TYPES = Literal["identify", "track", "page", "screen", "group", "alias"]


class SegmentEvent(BaseModel):
    """One call of the Segment spec. Unknown keys are kept as sent."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "track",
                    "userId": "u_123",
                    "event": "Report Exported",
                    "properties": {"format": "csv"},
                    "context": {"groupId": "acme"},
                    "messageId": "8a6e0a4e-2f5c-4f0f-9f59-3c1f1f1d2a71",
                    "timestamp": "2026-11-22T10:00:00Z",
                }
            ]
        },
    )

    type: _TYPES | None = Field(default=None, description="optional on the single-call routes")
    userId: str | None = Field(default=None, description="userId or anonymousId is required")
    anonymousId: str | None = None
    messageId: str | None = Field(
        default=None, max_length=200, description="a retry with the same id is a no-op"
    )
    timestamp: str | None = Field(default=None, description="ISO 8601; default: when received")
    originalTimestamp: str | None = None
    sentAt: str | None = None
    event: str | None = Field(default=None, description="required for track")
    name: str | None = Field(default=None, description="page or screen name")
    groupId: str | None = Field(default=None, description="required for group")
    previousId: str | None = Field(default=None, description="required for alias")
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class SegmentBatch(BaseModel):
    """Many calls in one request; ``context`` and ``integrations`` apply to each."""

    model_config = ConfigDict(extra="allow")

    batch: list[SegmentEvent]
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: str | None = None


class Accepted(BaseModel):
    """Every event of the request is durably in the inbox."""

    success: bool = True
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose messageId was already stored")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"success": True, "accepted": 98, "duplicates": 2}]}
    )


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
            "description": "JSON, optionally gzip-compressed (`Content-Encoding: gzip`)",
        }
    }


_ERRORS = error_responses(400, 401, 403, 413, 429)


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes *limit* bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError("body", f"is larger than the limit of {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError("body", f"is larger than the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _collect(request: Request, route_type: str | None) -> Accepted:
    state = request.app.state.tenure
    settings = state.project.config.serve
    try:
        body = await _read_capped(request, settings.max_batch_bytes)
        document = decode_body(
            body, request.headers.get("content-encoding"), settings.max_batch_bytes
        )
        events = events_of(
            document,
            route_type=route_type,
            received_at=state.project.clock(),
            max_event_bytes=settings.max_event_bytes,
        )
    except RequestError:
        state.metrics.events.labels("rejected").inc()
        raise
    with state.tracer.start_as_current_span("collect.write") as span:
        span.set_attribute("tenure.events", len(events))
        written = await state.writer.write(HTTP_SOURCE, events)
    state.metrics.events.labels("accepted").inc(written.accepted)
    state.metrics.events.labels("duplicate").inc(written.duplicates)
    return Accepted(accepted=written.accepted, duplicates=written.duplicates)


@router.post(
    "/v1/batch",
    response_model=Accepted,
    responses=_ERRORS,
    openapi_extra=_body_doc(SegmentBatch),
    summary="Send many events (Segment's batch call)",
)
async def batch(request: Request, _: Principal = Depends(require(Scope.EVENTS_WRITE))) -> Accepted:  # noqa: B008
    return await _collect(request, None)


def _single(kind: str, summary: str) -> None:
    async def route(
        request: Request,
        _: Principal = Depends(require(Scope.EVENTS_WRITE)),  # noqa: B008
    ) -> Accepted:
        return await _collect(request, kind)

    route.__name__ = kind
    router.add_api_route(
        f"/v1/{kind}",
        route,
        methods=["POST"],
        response_model=Accepted,
        responses=_ERRORS,
        openapi_extra=_body_doc(SegmentEvent),
        summary=summary,
    )


for _kind, _summary in (
    ("identify", "Who a user is (traits)"),
    ("track", "Something a user did"),
    ("page", "A web page a user saw"),
    ("screen", "An app screen a user saw"),
    ("group", "The account a user belongs to"),
    ("alias", "Merge two identities of a user"),
):
    _single(_kind, _summary)
