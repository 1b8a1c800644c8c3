"""Fixtures shared by the limiter's Redis tests (the Redis connection comes from tests/conftest)."""

from __future__ import annotations

from typing import cast

import pytest
import redis

from worker.limiter.redis_backend import RedisBackend

from .redis_support import unique_prefix


@pytest.fixture
def client(redis_client: object) -> redis.Redis:
    return cast(redis.Redis, redis_client)


@pytest.fixture
def backend(client: redis.Redis) -> RedisBackend:
    """A Redis backend under a prefix of its own (test_memory_backend overrides this name)."""
    return RedisBackend(client, unique_prefix())
