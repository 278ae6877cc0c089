"""SIGKILL at random moments of concurrent writes, two `storeengine serve` processes on one
MongoDB-wire database: within 15 s of each restart the feed replays to the data (tests/crashing.py).

Each process reaches the database through a proxy that holds its requests for DELAY seconds; a
kill drops what the proxy holds, so every write in flight is cut between two of its steps (without
it, the requests a killed process had sent are still carried out, and a random kill seldom falls
between two steps). The feed of the first design (change inserted after the entity write) fails
this test at its first kill: two creates in the data, not in the feed, 15 s after the restart.
CRASH_ITERATIONS (default 3, under a minute) makes it longer, e.g. CRASH_ITERATIONS=20."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server, stop_server
from tests.crashing import SCHEMA, STORE, Cluster, admin_headers, crash_run, report
from tests.lanes import WireDatabase
from tests.wire.proxy import DelayProxy

ITERATIONS = int(os.environ.get("CRASH_ITERATIONS", "3"))
DELAY = 0.03


@pytest.fixture
def proxies(wire_db: WireDatabase) -> Iterator[list[DelayProxy]]:
    port = int(wire_db.uri.split(":")[2].split("/")[0])
    made = [DelayProxy(port, DELAY), DelayProxy(port, DELAY)]
    yield made
    for proxy in made:
        proxy.close()


async def test_sigkill_during_concurrent_writes_leaves_the_feed_matching_the_data(
        wire_db: WireDatabase, proxies: list[DelayProxy], schema_dir: Path, tmp_path: Path) -> None:
    (schema_dir / f"{STORE}.json").write_text(json.dumps(SCHEMA))
    restarts = iter(range(1000))

    def start(index: int) -> Server:
        env = {**wire_db.env, "STORE_MONGODB_URI": proxies[index].uri()}
        return start_server(schema_dir, tmp_path / f"serve-{index}-{next(restarts)}.log", env=env)

    servers = [start(0), start(1)]

    def restart(index: int) -> Server:
        servers[index].handle.close()
        servers[index] = start(index)
        return servers[index]

    try:
        cluster = Cluster(servers, restart, admin_headers(servers[0].url), cut=lambda i: proxies[i].cut())
        run = await crash_run(cluster, ITERATIONS, seed=int(os.environ.get("CRASH_SEED", "20")))
    finally:
        for server in servers:
            stop_server(server)
    print(f"\ncrash run over the wire: {report(run)}")
    assert len(run.kills) == ITERATIONS and sum(run.writes.values()) > 0
