"""Schemathesis (3.x) against the served OpenAPI schema, in-process over ASGI: no 500s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from config import Settings
from tests.integration.api_support import open_resources, seeded_app


@pytest.fixture
def api_schema(settings: Settings, redis_client: redis.Redis) -> Iterator[Any]:
    res = open_resources(settings, redis_client)
    try:
        yield schemathesis.from_asgi("/openapi.json", seeded_app(res).app)
    finally:
        res.close()


# FastAPI serves OpenAPI 3.1, which Schemathesis 3.x supports behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()
schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors(case: Any) -> None:
    response = case.call_asgi()
    case.validate_response(response, checks=(not_a_server_error,))
