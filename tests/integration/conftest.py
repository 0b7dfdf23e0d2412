"""A delivery stack on real PostgreSQL and Redis, Evolution faked (tests/support/stack.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from config import Settings
from tests.support.evolution import T0
from tests.support.stack import Stack, build_stack
from worker.resources import install


@pytest.fixture
def make_stack(settings: Settings, redis_client: redis.Redis) -> Iterator[Callable[..., Stack]]:
    """`make_stack(**settings)`: a stack on this test's services, no requeue jitter, the
    test clock at T0."""
    built: list[Stack] = []

    def make(**overrides: Any) -> Stack:
        s = settings.model_copy(update={"requeue_jitter_seconds": 0.0, **overrides})
        stack = build_stack(s)
        built.append(stack)
        stack.set_clock(T0)
        return stack

    yield make
    for stack in built:
        stack.close()
    install(None)


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
