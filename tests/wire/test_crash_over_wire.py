"""SIGKILL at random moments of concurrent writes, two `storeengine serve` processes on one
MongoDB-wire database: within 15 s of each restart the feed replays to the data (tests/crashing.py).
CRASH_ITERATIONS (default 3, about 40 s) makes it longer, e.g. CRASH_ITERATIONS=20."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Server, start_server
from tests.crashing import SCHEMA, STORE, Cluster, admin_headers, crash_run, report
from tests.wire.conftest import WireDatabase, serving

ITERATIONS = int(os.environ.get("CRASH_ITERATIONS", "3"))


async def test_sigkill_during_concurrent_writes_leaves_the_feed_matching_the_data(
        wire_db: WireDatabase, schema_dir: Path, tmp_path: Path) -> None:
    (schema_dir / f"{STORE}.json").write_text(json.dumps(SCHEMA))
    with serving(2, wire_db, schema_dir, tmp_path) as servers:
        restarts = iter(range(1000))

        def restart(index: int) -> Server:
            servers[index].handle.close()
            servers[index] = start_server(schema_dir, tmp_path / f"restart-{next(restarts)}.log", env=wire_db.env)
            return servers[index]

        cluster = Cluster(servers, restart, admin_headers(servers[0].url))
        run = await crash_run(cluster, ITERATIONS, seed=int(os.environ.get("CRASH_SEED", "20")))
    print(f"\ncrash run over the wire: {report(run)}")
    (tmp_path / "kills.json").write_text(report(run))
    assert len(run.kills) == ITERATIONS and sum(run.writes.values()) > 0
