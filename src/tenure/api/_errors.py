"""One error body for every failure, and the handlers that produce it.

Every error the API answers is a 4xx whose body names what was wrong and, when
a field is to blame, which one (``batch[3].userId``, ``query.limit``). A
server error is a bug; its body carries the request id to find it in the log.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from tenure.collect._http import RequestError
from tenure.errors import (
    ConfigError,
    NotFoundError,
    PolicyError,
    ReviewError,
    TemplateError,
    TenureError,
)

__all__ = ["ApiError", "ErrorBody", "JsonResponse", "error_responses", "install_error_handlers"]


class JsonResponse(JSONResponse):
    """JSON rendered by orjson (datetimes as ISO 8601, dataclasses as objects).

    A :class:`JSONResponse` so that FastAPI documents each route's response model
    in OpenAPI (for any other response class it writes ``{"type": "string"}``).
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


class ErrorBody(BaseModel):
    """What went wrong."""

    error: str = Field(description="a stable code, e.g. invalid_request, unauthorized")
    message: str = Field(description="what was wrong, in words")
    field: str | None = Field(
        default=None, description="where the problem is, e.g. batch[3].userId or query.limit"
    )
    request_id: str | None = Field(default=None, description="the X-Request-ID of the request")
    code: str = Field(
        description="the same as `error`, where Segment's API puts it: the Segment and "
        "RudderStack SDKs read `code` and `message` to tell a refusal from a failure"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "an event needs a userId or an anonymousId",
                    "field": "batch[3].userId",
                    "request_id": "5f0c9d2e7a4b4c1e",
                    "code": "invalid_request",
                }
            ]
        }
    }


class ApiError(Exception):
    """Raised by routes: answered as *status* with an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}

_DESCRIPTIONS = {
    400: "The request is malformed; `field` names the problem.",
    401: "No API key, or not a valid one.",
    403: "The key's role may not use this route.",
    404: "Nothing by that id.",
    409: "The request conflicts with the current state.",
    413: "The body or one event is larger than the limit.",
    422: "A parameter is invalid; `field` names it.",
    429: "Too many requests for this key; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _answer(
    request: Request,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body = ErrorBody(
        error=code, message=message, field=field, request_id=_request_id(request), code=code
    ).model_dump()
    return JsonResponse(body, status_code=status, headers=headers)


def _location(loc: Any) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


#: FastAPI's detail for a request body it could not decode at all.
_UNPARSABLE_BODY = "There was an error parsing the body"


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, ApiError)
        return _answer(request, error.status, error.code, error.message, error.field, error.headers)

    async def request_error(request: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, RequestError)
        return _answer(
            request, error.status, _CODES.get(error.status, "invalid_request"), error.message,
            error.field,
        )  # fmt: skip

    async def validation_error(request: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        field = _location(first.get("loc", ()))
        return _answer(request, 422, "invalid_request", str(first.get("msg")), field or None)

    async def http_error(request: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400 and error.detail == _UNPARSABLE_BODY:
            # FastAPI answers a body that is not UTF-8 with this 400, but invalid JSON
            # with a 422: both are the same mistake, answered as the documented 422
            return _answer(request, 422, "invalid_request", "is not JSON in UTF-8", "body")
        code = _CODES.get(error.status_code, "error")
        headers = dict(error.headers) if error.headers else None
        return _answer(request, error.status_code, code, str(error.detail), None, headers)

    async def tenure_error(request: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, TenureError)
        if isinstance(error, NotFoundError):
            return _answer(request, 404, "not_found", str(error))
        if isinstance(error, ReviewError):
            return _answer(request, 409, "conflict", str(error))
        if isinstance(error, PolicyError | TemplateError | ConfigError):
            # the project's own files are wrong, not the request: the operator must fix them
            return _answer(request, 409, "project_error", str(error))
        return _answer(request, 400, "invalid_request", str(error))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestError, request_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(TenureError, tenure_error)
