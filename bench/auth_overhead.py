"""Requests/s of an authenticated GET /api/v1/<store>/<id> (Bearer JWT) next to the same request
with authentication removed (a pre-resolved principal), and MongoDB reads per authenticated request."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
from _common import bearer, counting_calls, database_note, line, running_app
from starlette.requests import Request

import storeengine.http.requests as endpoints  # `authenticated` routes call its authenticate()
from storeengine.model.access import Principal

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}}})
COUNT, WARMUP, ROUNDS = 2000, 100, 5


async def rate(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    """Sequential requests per second over COUNT requests, after WARMUP unmeasured ones."""
    for _ in range(WARMUP):
        if (await client.get(url, headers=headers)).status_code != 200:
            raise RuntimeError("the GET failed")
    start = time.perf_counter()
    for _ in range(COUNT):
        await client.get(url, headers=headers)
    return COUNT / (time.perf_counter() - start)


async def main() -> None:
    print(f"auth_overhead: sequential GET /api/v1/items/<id> through the in-process ASGI app; {ROUNDS} alternating\n"
          f"  rounds of {COUNT} requests (after {WARMUP} warm-up) with a Bearer JWT and with authenticate() replaced\n"
          f"  by a pre-resolved admin principal; median req/s; {database_note()}", flush=True)
    async with running_app({"items": SCHEMA}) as (client, ctx):
        headers = await bearer(client)
        created = (await client.post("/api/v1/items", json={"name": "x"}, headers=headers)).json()
        url = f"/api/v1/items/{created['_id']}"
        principal = await ctx.auth.authenticate(bearer=headers["Authorization"].split()[1])

        await rate(client, url, headers)  # warm the credential cache and the code paths
        with counting_calls(("find_one", "find", "count")) as counts:
            await rate(client, url, headers)
        per_request = {name: n / (COUNT + WARMUP) for name, n in counts.items()}

        real_authenticate = endpoints.authenticate

        async def pre_resolved(request: Request) -> Principal:
            return principal

        # Alternate the two so that drift on the machine favours neither; the same request bytes
        # in both (the Authorization header is still sent, only the check is gone).
        authed_runs, bare_runs = [], []
        for _ in range(ROUNDS):
            authed_runs.append(await rate(client, url, headers))
            endpoints.authenticate = pre_resolved
            try:
                bare_runs.append(await rate(client, url, headers))
            finally:
                endpoints.authenticate = real_authenticate
        authed, bare = statistics.median(authed_runs), statistics.median(bare_runs)
    line("authenticated (Bearer JWT)", f"{authed:8.0f} req/s")
    line("pre-resolved principal (no auth)", f"{bare:8.0f} req/s")
    line("ratio authenticated / no auth (target >= 0.8)", f"{authed / bare:8.2f}")
    line("find_one per authenticated request", f"{per_request['find_one']:8.3f}  (1 = the entity itself)")
    line("find + count per authenticated request", f"{per_request['find'] + per_request['count']:8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
