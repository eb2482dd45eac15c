"""A bounded property-based fuzz of the served OpenAPI document (schemathesis), on loopback: no input the
document allows may make the server fail (5xx), and every refusal is a problem object.

Each operation is driven through its Hypothesis strategy directly (schemathesis' pytest plugin does not load
under this pytest), :data:`MAX_EXAMPLES` cases each."""

from __future__ import annotations

import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.server.conftest import Served

MAX_EXAMPLES = 25
ENDLESS = "/api/v1/events/stream"  # an endless stream; tested in test_events.py


def _fuzz(operation: Any, base_url: str) -> int:
    calls = 0

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call_and_validate(base_url=base_url, checks=[not_a_server_error], timeout=60)
        if response.status_code >= 400:
            content_type = response.headers["content-type"]  # schemathesis keeps every value of a header
            assert "application/problem+json" in content_type, response.text
            assert response.json()["detail"], response.text

    check()
    return calls


def test_no_generated_request_makes_the_server_fail(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json").exclude(path=ENDLESS)
    started = time.monotonic()
    fuzzed: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzzed[operation.label] = _fuzz(operation, served.url)
    assert len(fuzzed) >= 15 and all(fuzzed.values()), fuzzed
    assert time.monotonic() - started < 120, "the fuzz must stay bounded"
