"""Run every benchmark in turn (`make bench`): on the MongoDB-wire server (mongoeco, when .venv-wire
exists) and on the embedded database (SQLite), then a table of the list / GET figures in both columns;
then write_path.py (the write path next to Eve and the floor over the wire; BENCH_WRITE_PATH=0 leaves
it out); then the peer benchmarks (storeengine next to PocketBase, and next to Parse Server, Eve and
the floor on jongodb: bench/peers/), ending with every peer target, `ok` or MISSED.
A failing script's stderr is shown, others' is not (it only holds the server's start-up warnings)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _wire import wire_server

HERE = Path(__file__).resolve().parent
EMBEDDED = ["list_10k.py", "auth_overhead.py", "acl_list.py", "realtime_fanout.py", "legacy_fanout.py", "feed.py",
            "console.py", "references.py", "tenants.py", "queries.py"]
# acl_list needs 100,000 entities, and mongoeco's insert checks _id against every stored document
# (quadratic): it runs on the embedded database only. The wire list uses 3,000 entities for the same reason.
WIRE = ["list_10k.py", "auth_overhead.py", "realtime_fanout.py", "references.py", "tenants.py", "queries.py"]
# Scripts that start their own wire server on data they seed straight into its file (a wire
# lane of 100,000 entities: mongoeco's inserts could not fill it): run once, on the wire when
# .venv-wire exists, else on the embedded database (BENCH_LANE=embedded).
OWN_WIRE = ["schema_check.py"]
# Peers (issues 21 and 26): each starts its own servers (installed on first use into bench/.peers/)
# and drives them with wrk (Debian's package) and Node (Parse Server, jongodb from npm).
# jongodb_costs.py has no target: it tells apart, in vs_parse.py's list times, the documents' and
# jongodb's own share (bench/peers/jongodb.py).
PEERS = ["vs_pocketbase.py", "vs_parse.py", "jongodb_costs.py"]
PEER_TOOLS = ["wrk", "node", "npm"]
WIRE_ENV = {"BENCH_LIST_COUNT": "3000",
            # 400 GETs a round, not 50: a 50-GET round on the wire lasts ~60 ms, and its ratio
            # swung 0.85-0.99 from run to run; at 400 the runs agree within a few per cent.
            "BENCH_GETS": "400",
            # mongoeco is single-threaded: while it inserts a batch, the driver's heartbeat waits.
            "STORE_SERVER_SELECTION_TIMEOUT_MS": "20000",
            # tenants.py's copy: 100,000 inserts into mongoeco would take hours (quadratic); see above.
            "BENCH_TENANT_COPY": "3000"}
# queries.py's 100,000 entities would take mongoeco hours to insert (its insert grows with the collection).
WIRE_SCRIPT_ENV = {"queries.py": {"BENCH_QUERIES_COUNT": "2000", "BENCH_QUERIES_BATCH": "100"}}
ROWS = [("entities listed", "count", "{:.0f}"), ("list: storeengine (ms)", "list_ms", "{:.1f}"),
        ("list: floor (ms)", "list_floor_ms", "{:.1f}"), ("list: ratio (target <= 1.3)", "list_ratio", "{:.2f}"),
        ("list: CPU here, storeengine (ms)", "list_cpu_ms", "{:.1f}"),
        ("list: CPU here, floor (ms)", "list_floor_cpu_ms", "{:.1f}"),
        ("GET by id: storeengine (req/s)", "get_rps", "{:.0f}"),
        ("GET by id: floor (req/s)", "get_floor_rps", "{:.0f}"),
        ("GET by id: ratio (target >= 0.9)", "get_ratio", "{:.2f}")]


def run(script: str, env: dict[str, str]) -> tuple[bool, dict[str, Any]]:
    start = time.perf_counter()
    base = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}  # embedded unless `env` says
    done = subprocess.run([sys.executable, str(HERE / script)], env={**base, **env, "BENCH_JSON": "1"},
                          capture_output=True, text=True, check=False)
    result: dict[str, Any] = {}
    for text in done.stdout.splitlines():
        if text.startswith("@result "):
            result = json.loads(text[len("@result "):])
        else:
            print(text, flush=True)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
    print(f"   ({time.perf_counter() - start:.0f} s{', FAILED' if done.returncode else ''})\n", flush=True)
    return not done.returncode, result


def table(columns: dict[str, dict[str, Any]]) -> None:
    print("== list and GET by id, side by side with their floors")
    print(f"  {'':<36}" + "".join(f"{name:>18}" for name in columns))
    for label, key, fmt in ROWS:
        cells = [fmt.format(c[key]) if key in c else "-" for c in columns.values()]
        print(f"  {label:<36}" + "".join(f"{cell:>18}" for cell in cells))


def peers(failed: list[str]) -> None:
    """The peer benchmarks, then every target of theirs in one list (a MISSED one is shouted, not failed:
    these are measurements, and a script fails only when it could not measure)."""
    missing = [tool for tool in PEER_TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"!!! {', '.join(missing)} not installed (wrk: `apt-get install -y wrk`): the peer benchmarks are"
              f" SKIPPED !!!\n", flush=True)
        return
    summary: list[tuple[str, dict[str, Any]]] = []
    for script in PEERS:
        print(f"== {script} (peers)", flush=True)
        ok, result = run(script, {})
        failed += [] if ok else [script]
        summary += [(script, row) for row in result.get("ratios", [])]
    print("== peer targets")
    for script, row in summary:
        mark = "ok" if row["ok"] else "!!! MISSED !!!"
        print(f"  {script:<17} {row['ratio']:<62} {row['value']:>6.2f}x  {row['target']:<7} {mark}")
    missed = sum(not row["ok"] for _, row in summary)
    if missed:
        print(f"  !!! {missed} of {len(summary)} peer targets MISSED !!!")


def main() -> int:
    failed: list[str] = []
    columns: dict[str, dict[str, Any]] = {}
    with wire_server() as uri:
        if uri is None:
            print("!!! no .venv-wire (Python >= 3.13 + mongoeco): the MongoDB-wire column is SKIPPED;"
                  " run `make wire-env` !!!\n", flush=True)
        for script in WIRE if uri else []:
            print(f"== {script} (MongoDB wire: mongoeco)", flush=True)
            ok, result = run(script, {**WIRE_ENV, **WIRE_SCRIPT_ENV.get(script, {}), "STORE_MONGODB_URI": uri or ""})
            failed += [] if ok else [f"{script} (wire)"]
            if result:
                columns["wire (mongoeco)"] = result
        have_wire = uri is not None
    for script in OWN_WIRE:
        print(f"== {script} ({'MongoDB wire: mongoeco, seeded' if have_wire else 'embedded database: SQLite'})",
              flush=True)
        ok, _ = run(script, {} if have_wire else {"BENCH_LANE": "embedded"})
        failed += [] if ok else [script]
    for script in EMBEDDED:
        print(f"== {script} (embedded database: SQLite)", flush=True)
        ok, result = run(script, {})
        failed += [] if ok else [f"{script} (embedded)"]
        if result:
            columns["embedded (SQLite)"] = result
    table(columns)
    if os.environ.get("BENCH_WRITE_PATH") != "0":  # its own wire servers, Eve and the floor (minutes)
        print("\n== write_path.py (POST / GET by id / list next to Eve and the floor, on mongoeco and jongodb)",
              flush=True)
        ok, _ = run("write_path.py", {})
        failed += [] if ok else ["write_path.py"]
    print(flush=True)
    peers(failed)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
