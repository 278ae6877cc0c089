"""GET /api/v1/<store>?limit=10000 over 10,000 entities of 10 fields, next to the floor:
the bare motor find + sort _id + to_list + orjson.dumps of the same documents on the same database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import orjson
from _common import bearer, database_note, driver_collection, line, median_ms, running_app, timed
from bson import ObjectId

from storeengine.formats import utcnow
from storeengine.jsonio import dumps

SCHEMA = json.dumps({"type": "object", "properties": {
    "name": {"type": "string"}, "sku": {"type": "string"}, "price": {"type": "number"},
    "stock": {"type": "integer"}, "active": {"type": "boolean"}, "tags": {"type": "array"},
    "color": {"type": "string"}, "weight": {"type": "number"}, "rating": {"type": "number"},
    "vendor": {"type": "string"}}})
COUNT, RUNS = 10_000, 7


def entity(i: int, owner: ObjectId) -> dict[str, Any]:
    """A document as the engine writes it: the fields plus _id and the system fields."""
    at = utcnow() + timedelta(milliseconds=i)
    return {"_id": ObjectId(), "name": f"item {i}", "sku": f"SKU-{i:06d}", "price": i * 0.37 % 100,
            "stock": i % 50, "active": i % 2 == 0, "tags": ["a", "b"], "color": "red", "weight": 1.5,
            "rating": 4.2, "vendor": "acme", "owner": owner, "group": None, "access": [], "branch": [],
            "createdAt": at, "updatedAt": at}


async def main() -> None:
    print(f"list_10k: GET /api/v1/items?limit={COUNT} as admin through the in-process ASGI app, against the floor\n"
          f"  (motor find().sort(_id).limit + to_list + orjson.dumps(default=str)); median of {RUNS} runs after\n"
          f"  a warm-up; {database_note()}", flush=True)
    async with running_app({"items": SCHEMA}) as (client, ctx):
        headers = await bearer(client)
        raw = driver_collection(ctx, "items")
        await raw.insert_many([entity(i, ObjectId()) for i in range(COUNT)])

        async def served() -> None:
            r = await client.get(f"/api/v1/items?limit={COUNT}", headers=headers)
            if r.status_code != 200 or len(r.json()) != COUNT:
                raise RuntimeError(f"unexpected answer {r.status_code}")

        async def floor() -> None:
            docs = await raw.find({}).sort("_id", 1).limit(COUNT).to_list(None)
            orjson.dumps(docs, default=str)

        served_ms = median_ms(await timed(served, RUNS))
        floor_ms = median_ms(await timed(floor, RUNS))
        # The engine's own share without the database: its encoder (ObjectId and ms-precision
        # dates) against orjson with default=str, on the same 10,000 documents.
        docs = await raw.find({}).sort("_id", 1).limit(COUNT).to_list(None)

        async def engine_encode() -> None:
            dumps(docs)

        async def bare_encode() -> None:
            orjson.dumps(docs, default=str)

        engine_ms = median_ms(await timed(engine_encode, RUNS))
        bare_ms = median_ms(await timed(bare_encode, RUNS))
    line("server: GET through the whole app", f"{served_ms:8.1f} ms")
    line("floor: find + to_list + orjson.dumps", f"{floor_ms:8.1f} ms")
    line("ratio server / floor (target <= 1.5)", f"{served_ms / floor_ms:8.2f} x")
    line("encode only: engine jsonio.dumps", f"{engine_ms:8.1f} ms")
    line("encode only: orjson.dumps(default=str)", f"{bare_ms:8.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
