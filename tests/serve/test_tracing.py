"""Spans around ingest, decide and deliver reach the configured tracer provider."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenure.api import load_once
from tenure.decide import decide
from tenure.deliver import run_worker
from tenure.govern.keys import Role
from tenure.project import Project
from tests.decide._world import customer, publish, write_policy_files

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of the test (one SDK provider per process, as OpenTelemetry allows)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_tenure_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._tenure_test_exporter = True  # type: ignore[attr-defined]
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def test_collection_loading_deciding_and_delivering_are_traced(
    spans: InMemorySpanExporter,
    api_project: Project,
    keys: dict[Role, str],
    http: httpx.Client,
) -> None:
    event = {"type": "track", "userId": "u1", "event": "Signed In", "messageId": "t-1"}
    assert http.post("/v1/batch", json={"batch": [event]}, auth=(keys[Role.INGEST], "")).is_success
    load_once(api_project)
    write_policy_files(api_project)
    publish(api_project, [customer(1, logins=1, timezone="UTC")])
    report = decide(api_project)
    assert report.customers == 1
    run_worker(api_project, once=True)  # the email fails (no SMTP server): a span all the same
    names = [s.name for s in spans.get_finished_spans()]
    for expected in ("collect.write", "collect.load", "decide.cycle", "deliver.send"):
        assert expected in names, names
    write = next(s for s in spans.get_finished_spans() if s.name == "collect.write")
    assert write.attributes is not None
    assert write.attributes["tenure.events"] == 1
