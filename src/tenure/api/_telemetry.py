"""Request logs and metrics: one structlog JSON line and one observation per request.

Each line carries the request id, route, status, latency and the calling
key's id (never the key itself). Tracing is :mod:`tenure._tracing`.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMiddleware", "make_logger"]


def make_logger(enabled: bool) -> Any:
    """A structlog logger writing JSON lines to standard error (silent when not *enabled*)."""
    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        # disabled: only CRITICAL would pass (the API logs nothing at that level),
        # and a filtered call costs one level check
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if enabled else logging.CRITICAL
        ),
    )


class RequestMiddleware:
    """Request id in and out, latency and count per route, and one log line per request.

    A plain ASGI middleware (not BaseHTTPMiddleware): it adds no task or
    stream copy per request, which matters on the collection path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = given.decode("latin-1")[:64] if given else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            # a route's template, never a raw path (unbounded label values), except for
            # FastAPI's own pages (docs, openapi.json), which answer without a route
            path = route or (scope["path"] if status != 404 else "unmatched")
            state = scope["app"].state.tenure
            method = scope["method"]
            state.metrics.requests.labels(path, method, str(status)).inc()
            state.metrics.latency.labels(path, method).observe(elapsed)
            principal = scope["state"].get("principal")
            state.log.info(
                "request",
                request_id=request_id,
                method=method,
                route=path,
                status=status,
                ms=round(elapsed * 1000, 2),
                key=getattr(principal, "key_id", None),
            )
