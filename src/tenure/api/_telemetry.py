"""Tracing and request logs: OpenTelemetry spans (off by default) and JSON log lines.

Spans wrap the work that matters (collection writes, inbox loads, decisions,
deliveries); the exporter is chosen in ``serve.tracing``. Logs are structlog
JSON lines on standard error, one per request, with its request id, route,
status, latency and the calling key's id (never the key itself).
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenure._config_serve import ServeSettings, Tracing
from tenure.errors import ConfigError, ConfigProblem

__all__ = ["RequestMiddleware", "make_logger", "make_tracer"]


def make_tracer(settings: ServeSettings) -> tuple[trace.Tracer, TracerProvider | None]:
    """The tracer the app's spans go to, and its provider (to shut down) if one was made."""
    if settings.tracing is Tracing.NONE:
        return trace.NoOpTracer(), None
    exporter: SpanExporter
    if settings.tracing is Tracing.CONSOLE:
        exporter = ConsoleSpanExporter(out=sys.stderr)
        processor: Any = SimpleSpanProcessor(exporter)
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "serve.tracing",
                [ConfigProblem("serve.tracing", "otlp needs opentelemetry-exporter-otlp-proto-http "
                               "installed (pip install opentelemetry-exporter-otlp-proto-http)",
                               "otlp")],
            ) from None  # fmt: skip
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        processor = BatchSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "tenure"}))
    provider.add_span_processor(processor)
    return provider.get_tracer("tenure"), provider


def make_logger(enabled: bool) -> Any:
    """A structlog logger writing JSON lines to standard error (or nowhere)."""
    if not enabled:
        return structlog.wrap_logger(None, logger_factory=lambda *_: _Null())
    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


class _Null:
    def msg(self, *_: Any, **__: Any) -> None:
        return None

    info = warning = error = exception = debug = msg


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
