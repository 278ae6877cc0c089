"""SIGKILL at random moments of concurrent writes, one `storeengine serve` on an embedded data
folder (STORE_DATA_DIR): within 15 s of each restart the feed replays to the data
(tests/crashing.py). CRASH_ITERATIONS makes it longer."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Server, start_server, stop_server
from tests.crashing import SCHEMA, STORE, Cluster, admin_headers, crash_run, report

ITERATIONS = int(os.environ.get("CRASH_ITERATIONS", "3"))


async def test_sigkill_during_concurrent_writes_on_the_embedded_database(schema_dir: Path, tmp_path: Path) -> None:
    (schema_dir / f"{STORE}.json").write_text(json.dumps(SCHEMA))
    env = {"STORE_DATA_DIR": str(tmp_path / "data")}
    servers = [start_server(schema_dir, tmp_path / "serve.log", env=env)]
    restarts = iter(range(1000))

    def restart(index: int) -> Server:
        servers[index].handle.close()
        servers[index] = start_server(schema_dir, tmp_path / f"restart-{next(restarts)}.log", env=env)
        return servers[index]

    try:
        cluster = Cluster(servers, restart, admin_headers(servers[0].url))
        run = await crash_run(cluster, ITERATIONS, seed=int(os.environ.get("CRASH_SEED", "20")))
    finally:
        stop_server(servers[0])
    print(f"\ncrash run on the embedded database: {report(run)}")
    assert len(run.kills) == ITERATIONS and sum(run.writes.values()) > 0
