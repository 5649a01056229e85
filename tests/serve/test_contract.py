"""The live API keeps the promises of its own OpenAPI document (schemathesis).

Every operation the server documents is called with generated requests, valid
and invalid, with an admin key: no answer may be a server error, and every
answer must be a documented status with a body and headers of the documented
shape. Bounded and derandomized, so a run is repeatable and quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tenure.govern.keys import Role

_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
_EXAMPLES = 25


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # generated requests come fast, from one key; 429 is not what is under test
    monkeypatch.setenv("TENURE_SERVE_RATE_LIMIT", "1000000")
    monkeypatch.setenv("TENURE_SERVE_RATE_BURST", "1000000")


def _has_input(document: dict[str, Any], path: str, method: str) -> bool:
    operation = document["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _report(found: BaseException) -> str:
    if isinstance(found, FailureGroup):
        return str(found)  # schemathesis's report: the checks, the response, a curl command
    if isinstance(found, BaseExceptionGroup):  # Hypothesis found several distinct failures
        return "\n".join(_report(each) for each in found.exceptions)
    raise found


def _failures(run: Callable[[], None]) -> str | None:
    try:
        run()
    except BaseExceptionGroup as found:
        return _report(found)
    return None


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_every_documented_operation_answers_as_documented(
    keys: dict[Role, str], base_url: str
) -> None:
    document = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {keys[Role.ADMIN]}"}
    found: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            found.append(f"an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        modes = [schemathesis.GenerationMode.POSITIVE]
        if _has_input(document, operation.path, operation.method):
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )
            def call(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(base_url=base_url, headers=headers, checks=_CHECKS)

            failure = _failures(call)
            if failure is not None:
                found.append(f"{operation.label} ({mode.value} data):\n{failure}")
    assert operations >= 8  # the document lists the API, not just the probes
    assert not found, "\n\n".join(found)
