"""Run every benchmark in turn (`make bench`): on the MongoDB-wire server (mongoeco, when .venv-wire
exists) and on the embedded fake, then a table of the list / GET figures in both columns, then
write_path.py (storeengine next to Eve and the floor over the wire; BENCH_WRITE_PATH=0 leaves it out).
A failing script's stderr is shown, others' is not (it only holds the server's start-up warnings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _wire import wire_server

HERE = Path(__file__).resolve().parent
FAKE = ["list_10k.py", "auth_overhead.py", "acl_list.py", "realtime_fanout.py", "legacy_fanout.py", "feed.py",
        "console.py"]
# acl_list needs 100,000 entities, and mongoeco's insert checks _id against every stored document
# (quadratic): it runs on the fake only. The wire list uses 3,000 entities for the same reason.
WIRE = ["list_10k.py", "auth_overhead.py", "realtime_fanout.py"]
WIRE_ENV = {"BENCH_LIST_COUNT": "3000",
            # 400 GETs a round, not 50: a 50-GET round on the wire lasts ~60 ms, and its ratio
            # swung 0.85-0.99 from run to run; at 400 the runs agree within a few per cent.
            "BENCH_GETS": "400",
            # mongoeco is single-threaded: while it inserts a batch, the driver's heartbeat waits.
            "STORE_SERVER_SELECTION_TIMEOUT_MS": "20000"}
ROWS = [("entities listed", "count", "{:.0f}"), ("list: storeengine (ms)", "list_ms", "{:.1f}"),
        ("list: floor (ms)", "list_floor_ms", "{:.1f}"), ("list: ratio (target <= 1.3)", "list_ratio", "{:.2f}"),
        ("list: CPU here, storeengine (ms)", "list_cpu_ms", "{:.1f}"),
        ("list: CPU here, floor (ms)", "list_floor_cpu_ms", "{:.1f}"),
        ("GET by id: storeengine (req/s)", "get_rps", "{:.0f}"),
        ("GET by id: floor (req/s)", "get_floor_rps", "{:.0f}"),
        ("GET by id: ratio (target >= 0.9)", "get_ratio", "{:.2f}")]


def run(script: str, env: dict[str, str]) -> tuple[bool, dict[str, float]]:
    start = time.perf_counter()
    base = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}  # the fake unless `env` says
    done = subprocess.run([sys.executable, str(HERE / script)], env={**base, **env, "BENCH_JSON": "1"},
                          capture_output=True, text=True, check=False)
    result: dict[str, float] = {}
    for text in done.stdout.splitlines():
        if text.startswith("@result "):
            result = json.loads(text[len("@result "):])
        else:
            print(text, flush=True)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
    print(f"   ({time.perf_counter() - start:.0f} s{', FAILED' if done.returncode else ''})\n", flush=True)
    return not done.returncode, result


def table(columns: dict[str, dict[str, float]]) -> None:
    print("== list and GET by id, side by side with their floors")
    print(f"  {'':<36}" + "".join(f"{name:>18}" for name in columns))
    for label, key, fmt in ROWS:
        cells = [fmt.format(c[key]) if key in c else "-" for c in columns.values()]
        print(f"  {label:<36}" + "".join(f"{cell:>18}" for cell in cells))


def main() -> int:
    failed: list[str] = []
    columns: dict[str, dict[str, float]] = {}
    with wire_server() as uri:
        if uri is None:
            print("!!! no .venv-wire (Python >= 3.13 + mongoeco): the MongoDB-wire column is SKIPPED;"
                  " run `make wire-env` !!!\n", flush=True)
        for script in WIRE if uri else []:
            print(f"== {script} (MongoDB wire: mongoeco)", flush=True)
            ok, result = run(script, {**WIRE_ENV, "STORE_MONGODB_URI": uri or ""})
            failed += [] if ok else [f"{script} (wire)"]
            if result:
                columns["wire (mongoeco)"] = result
    for script in FAKE:
        print(f"== {script} (embedded fake: mongomock-motor)", flush=True)
        ok, result = run(script, {})
        failed += [] if ok else [f"{script} (fake)"]
        if result:
            columns["fake (mongomock)"] = result
    table(columns)
    if os.environ.get("BENCH_WRITE_PATH") != "0":  # its own wire servers, Eve and the floor (minutes)
        print("\n== write_path.py (POST / GET by id / list next to Eve and the floor, on mongoeco and jongodb)",
              flush=True)
        ok, _ = run("write_path.py", {})
        failed += [] if ok else ["write_path.py"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
