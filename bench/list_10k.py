"""GET /api/v1/<store>?limit=10000 over 10,000 entities of ~10 fields, next to the floor:
the bare motor find + to_list + orjson.dumps of the same documents on the same database."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

import orjson
from bson import ObjectId

from _common import admin_headers, database_note, line, median_ms, running_app, timed
from storeengine.formats import utcnow
from storeengine.jsonio import dumps

SCHEMA = json.dumps({"type": "object", "properties": {
    "name": {"type": "string"}, "sku": {"type": "string"}, "price": {"type": "number"},
    "stock": {"type": "integer"}, "active": {"type": "boolean"}, "tags": {"type": "array"},
    "color": {"type": "string"}, "weight": {"type": "number"}, "rating": {"type": "number"},
    "vendor": {"type": "string"}}})
COUNT, RUNS = 10_000, 7


def entity(i: int, owner: ObjectId) -> dict:
    now = utcnow() + timedelta(milliseconds=i)
    return {"_id": ObjectId(), "name": f"item {i}", "sku": f"SKU-{i:06d}", "price": random.random() * 100,
            "stock": i % 50, "active": i % 2 == 0, "tags": ["a", "b"], "color": "red", "weight": 1.5,
            "rating": 4.2, "vendor": "acme", "owner": owner, "group": None, "access": [], "branch": [],
            "createdAt": now, "updatedAt": now}


async def main() -> None:
    print(f"list_10k: GET ?limit={COUNT} as admin, in-process ASGI, median of {RUNS} runs; {database_note()}")
    async with running_app({"items": SCHEMA}) as (client, ctx):
        headers = await admin_headers(client)
        owner = ObjectId()
        raw = ctx.storage.collection("items").raw
        await raw.insert_many([entity(i, owner) for i in range(COUNT)])

        async def served() -> None:
            r = await client.get(f"/api/v1/items?limit={COUNT}", headers=headers)
            assert r.status_code == 200 and len(r.content) > COUNT * 100

        async def floor() -> None:
            docs = await raw.find({}).sort("_id", 1).limit(COUNT).to_list(None)
            orjson.dumps(docs, default=str)

        served_ms = median_ms(await timed(served, RUNS))
        floor_ms = median_ms(await timed(floor, RUNS))
        # The engine's own share, without the database: its encoder (ObjectId and ms-precision
        # dates through one `default`) against orjson with default=str on the same documents.
        docs = await raw.find({}).sort("_id", 1).limit(COUNT).to_list(None)

        async def engine_encode() -> None:
            dumps(docs)

        async def bare_encode() -> None:
            orjson.dumps(docs, default=str)

        engine_ms = median_ms(await timed(engine_encode, RUNS))
        bare_ms = median_ms(await timed(bare_encode, RUNS))
    line("server (GET through the whole app)", f"{served_ms:8.1f} ms")
    line("floor (find + to_list + orjson.dumps)", f"{floor_ms:8.1f} ms")
    line("ratio (target <= 1.5)", f"{served_ms / floor_ms:8.2f} x")
    line("encode only: engine jsonio.dumps", f"{engine_ms:8.1f} ms")
    line("encode only: orjson.dumps(default=str)", f"{bare_ms:8.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
