"""`_aggregate` is bounded by STORE_QUERY_TIMEOUT_MS (maxTimeMS on the wire): 503, and the server goes on."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from storeengine.settings import Settings
from tests.wire.test_database import SLOW_FILTER, SLOW_NAME, assert_error


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"query_timeout_ms": 100})


async def test_an_aggregation_past_query_timeout_is_503(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for _ in range(40):
        assert (await client.post("/api/v1/things", json={"name": SLOW_NAME}, headers=admin)).status_code == 201
    start = time.perf_counter()
    r = await client.get("/api/v1/things/_aggregate", params={"count": "true", "filter": json.dumps(SLOW_FILTER)},
                         headers=admin)
    assert_error(r, 503, "error_unavailable")
    assert time.perf_counter() - start < 2
    r = await client.get("/api/v1/things/_aggregate", params={"count": "true", "name": SLOW_NAME}, headers=admin)
    assert r.json() == [{"group": {}, "count": 40}]
