"""Tracing: spans around ingest, decide and deliver, sent where ``serve.tracing`` says.

Library code asks :func:`tracer` for the process-wide tracer; until
:func:`configure_tracing` installs a provider (``tenure serve`` or ``tenure
worker`` with ``serve.tracing`` other than ``none``), its spans cost next to
nothing and go nowhere. OpenTelemetry allows one provider per process, so the
first configuration wins.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from tenure._config_serve import ServeSettings, Tracing
from tenure.errors import ConfigError, ConfigProblem

__all__ = ["configure_tracing", "tracer"]

_lock = threading.Lock()
_configured: list[TracerProvider] = []


def tracer() -> trace.Tracer:
    """The tracer tenure's spans go to (a no-op until tracing is configured)."""
    return trace.get_tracer("tenure")


def configure_tracing(settings: ServeSettings) -> TracerProvider | None:
    """Install the exporter *settings* choose as this process's tracer provider.

    Returns the provider installed (now or by an earlier call), or None when
    tracing is off.
    """
    if settings.tracing is Tracing.NONE:
        return None
    with _lock:
        if _configured:
            return _configured[0]
        processor: Any
        if settings.tracing is Tracing.CONSOLE:
            processor = SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ConfigError(
                    "serve.tracing",
                    [ConfigProblem(
                        "serve.tracing",
                        "otlp needs the OTLP exporter: pip install "
                        "opentelemetry-exporter-otlp-proto-http",
                        "otlp",
                    )],
                ) from None  # fmt: skip
            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        provider = TracerProvider(resource=Resource.create({"service.name": "tenure"}))
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _configured.append(provider)
        return provider
