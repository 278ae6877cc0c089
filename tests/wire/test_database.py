"""What only a real driver connection shows: maxTimeMS, a server that goes away and comes back,
integers beyond BSON's 64 bits, and unique indexes enforced by the server under concurrency."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from storeengine.app import create_app
from storeengine.settings import Settings
from storeengine.storage.mongo import Storage
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, lifespan, token_for
from tests.lanes import WireDatabase, WireServer, require_wire
from tests.wire.proxy import DelayProxy

# Catastrophic backtracking: each document costs the server tens of ms, so a list over a few
# dozen of them outlasts a 100 ms maxTimeMS (the server checks the bound between documents).
SLOW_FILTER = {"name": {"$regex": "^(a|aa)+$"}}
SLOW_NAME = "a" * 25 + "b"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"query_timeout_ms": 100, "server_selection_timeout_ms": 500})


def assert_error(r: httpx.Response, status: int, tag: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == str(status) and tag in body["tags"], body


async def test_a_read_past_query_timeout_is_503_and_the_server_goes_on(
        client: httpx.AsyncClient, admin: dict[str, str], wire_db: WireDatabase) -> None:
    for _ in range(40):
        assert (await client.post("/api/v1/things", json={"name": SLOW_NAME}, headers=admin)).status_code == 201
    mongo: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(wire_db.uri) as mongo:  # unbounded, the same query takes longer than the bound
        start = time.perf_counter()
        assert list(mongo[wire_db.name]["things"].find(SLOW_FILTER)) == []
        assert time.perf_counter() - start > 0.2
    start = time.perf_counter()
    r = await client.get("/api/v1/things", params={"filter": json.dumps(SLOW_FILTER)}, headers=admin)
    assert_error(r, 503, "error_unavailable")
    assert time.perf_counter() - start < 2
    r = await client.get("/api/v1/things", params={"name": SLOW_NAME, "meta": "true"}, headers=admin)
    assert r.status_code == 200 and r.json()["total"] == 40, r.text


# Over the wire these were a 500 (the driver cannot encode them); the engine refuses them first.
@pytest.mark.parametrize(("params", "tag"), [
    ({"filter": json.dumps({"count": 2**63})}, "error_validation"),  # `fields` names filter.count
    ({"filter": '{"count": {"$gt": -9223372036854775809}}'}, "error_validation"),
    ({"count": str(2**64)}, "error_bad_request"),
])
async def test_an_integer_beyond_64_bits_in_a_list_is_400(client: httpx.AsyncClient, admin: dict[str, str],
                                                          params: dict[str, str], tag: str) -> None:
    r = await client.get("/api/v1/things", params=params, headers=admin)
    assert_error(r, 400, tag)
    assert "count" in r.text


async def test_an_integer_beyond_64_bits_in_a_body_is_400(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post("/api/v1/things", content=b'{"name": "big", "count": 9223372036854775808}',
                          headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert (await client.get("/api/v1/things", headers=admin)).json() == []


async def test_concurrent_creates_of_one_unique_value_give_one_201_and_409s(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"name": "W", "price": 1, "sku": "RACE-1"}
    answers = await asyncio.gather(*(client.post("/api/v1/products", json=body, headers=admin) for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409, 409], [r.text for r in answers]
    assert len((await client.get("/api/v1/products", params={"sku": "RACE-1"}, headers=admin)).json()) == 1


# --- the database goes away and comes back -------------------------------------------------

@pytest.fixture
def persistent_server(tmp_path: Path) -> Any:
    """A wire server of its own whose data survives a restart (the shared one keeps data in memory)."""
    require_wire()
    server = WireServer(tmp_path / "mongoeco.log", data=tmp_path / "data.sqlite")
    server.start()
    yield server
    server.stop()


async def eventually(check: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "did not happen in time"
        await asyncio.sleep(0.1)


async def test_database_down_is_503_then_the_routes_recover_by_themselves(
        persistent_server: WireServer, schema_dir: Path) -> None:
    settings = Settings(schema_dir=schema_dir, secret="test-secret-of-at-least-32-bytes!!",
                        admin_password=ADMIN_PASSWORD, mongodb_uri=persistent_server.uri, database="down",
                        server_selection_timeout_ms=500, argon2_time_cost=1, argon2_memory_kib=64)
    app = create_app(settings)
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        created = (await client.post("/api/v1/notes", json={"title": "kept"}, headers=admin)).json()
        persistent_server.stop()
        r = await client.get("/healthz")
        assert r.status_code == 503 and r.json()["database"] == "unavailable", r.text
        for method, path, body in [("GET", f"/api/v1/notes/{created['_id']}", None), ("GET", "/api/v1/notes", None),
                                   ("POST", "/api/v1/notes", {"title": "lost"})]:
            assert_error(await client.request(method, path, json=body, headers=admin), 503, "error_unavailable")
        persistent_server.start()

        async def healthy() -> bool:
            return (await client.get("/healthz")).status_code == 200

        await eventually(healthy, 10)
        r = await client.get(f"/api/v1/notes/{created['_id']}", headers=admin)
        assert r.status_code == 200 and r.json() == created, r.text
        assert (await client.post("/api/v1/notes", json={"title": "after"}, headers=admin)).status_code == 201
        titles = [n["title"] for n in (await client.get("/api/v1/notes", headers=admin)).json()]
        assert titles == ["kept", "after"]


async def test_a_database_slower_than_the_selection_timeout_is_slow_not_unavailable(
        wire_db: WireDatabase, settings: Settings) -> None:
    """A busy database answers late; new connections' handshakes are late too. Bounding those by
    the selection timeout (500 ms here) failed them, and the driver then cleared its pool: 503s."""
    proxy = DelayProxy(int(wire_db.uri.split(":")[2].split("/")[0]), 0.0)
    storage = Storage.connect(settings.model_copy(update={"mongodb_uri": proxy.uri(), "database": wire_db.name}))
    try:
        coll = storage.collection("slow")
        await coll.insert({"_id": 1})
        proxy.delay = 0.8
        assert await asyncio.gather(*(coll.find_one({"_id": 1}) for _ in range(4))) == [{"_id": 1}] * 4
    finally:
        await storage.close()
        proxy.close()
