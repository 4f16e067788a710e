"""Shared unit-test fixtures: a real redis-server for the ledger and budget tests."""

from __future__ import annotations

import pytest

from tests.redis_server import start_redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(5)
