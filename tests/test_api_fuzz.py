"""A loopback fuzz run of the API against its own OpenAPI schema (issue 19): schemathesis sends
generated requests to `course serve` on 127.0.0.1 and checks that none gets a 5xx and that every
response matches the documented status codes, content types and bodies. Bounded: a few dozen
examples per operation, no shrinking, one profile per run."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import positive_data_acceptance

from course_lib.background import BackgroundServer, start_course_api
from course_lib.config import Profile

EXAMPLES = 25  # per operation: six operations, about 150 requests
# Not checked: that every schema-valid request is accepted. JSON Schema counts `1.0` as an
# integer, and the API refuses floats where it documents ids (tests/test_api_limits.py).


@pytest.fixture(scope="module")
def server(ready: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """`course serve` for the profile on a free loopback port."""
    with start_course_api(ready, Path(tmp_path_factory.mktemp("fuzz")) / "api.log") as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(server: BackgroundServer) -> schemathesis.schemas.BaseSchema:
    """The running API's own OpenAPI schema."""
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_generated_request_gets_a_5xx_or_an_undocumented_response(
        api_schema: schemathesis.schemas.BaseSchema) -> None:
    """Each documented operation, fuzzed in turn (schemathesis's pytest plugin predates pytest 9, so
    the operations' Hypothesis strategies are driven here)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/users/{user_id}/features", "/recommendations", "/health"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])

        fuzz()
