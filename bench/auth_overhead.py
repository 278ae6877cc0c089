"""Requests/s of an authenticated GET /api/v1/<store>/<id> (Bearer JWT) next to the same request
with authentication removed (a pre-resolved principal), and MongoDB lookups per request."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import storeengine.http.entities as endpoints
from _common import admin_headers, database_note, line, running_app
from storeengine.acl import Principal
from storeengine.storage import Collection

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}}})
COUNT = 2000
ROUNDS = 5


async def rate(client, url: str, headers: dict[str, str]) -> float:
    for _ in range(100):
        assert (await client.get(url, headers=headers)).status_code == 200
    start = time.perf_counter()
    for _ in range(COUNT):
        await client.get(url, headers=headers)
    return COUNT / (time.perf_counter() - start)


async def main() -> None:
    print(f"auth_overhead: {ROUNDS} alternating rounds of {COUNT} sequential GETs of one entity (median), "
          f"in-process ASGI; {database_note()}")
    async with running_app({"items": SCHEMA}) as (client, ctx):
        headers = await admin_headers(client)
        created = (await client.post("/api/v1/items", json={"name": "x"}, headers=headers)).json()
        url = f"/api/v1/items/{created['_id']}"
        principal = await ctx.auth.authenticate(bearer=headers["Authorization"].split()[1])

        lookups = 0
        real_find_one = Collection.find_one

        async def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal lookups
            lookups += 1
            return await real_find_one(self, *args, **kwargs)

        Collection.find_one = counting  # type: ignore[method-assign]
        await rate(client, url, headers)
        per_request = lookups / (COUNT + 100)
        Collection.find_one = real_find_one  # type: ignore[method-assign]

        real_authenticate = endpoints.authenticate

        async def pre_resolved(request) -> Principal:  # type: ignore[no-untyped-def]
            return principal

        # Alternate the two, so drift on the machine does not favour either; same request
        # bytes in both (the Authorization header is sent, only the check is gone).
        authed_runs, bare_runs = [], []
        for _ in range(ROUNDS):
            authed_runs.append(await rate(client, url, headers))
            endpoints.authenticate = pre_resolved  # type: ignore[assignment]
            bare_runs.append(await rate(client, url, headers))
            endpoints.authenticate = real_authenticate
        authed, bare = statistics.median(authed_runs), statistics.median(bare_runs)
    line("authenticated (Bearer JWT)", f"{authed:8.0f} req/s")
    line("pre-resolved principal (no auth)", f"{bare:8.0f} req/s")
    line("ratio authenticated / no auth (target >= 0.8)", f"{authed / bare:8.2f}")
    line("MongoDB find_one per authenticated request", f"{per_request:8.3f}  (1 = the entity itself)")


if __name__ == "__main__":
    asyncio.run(main())
