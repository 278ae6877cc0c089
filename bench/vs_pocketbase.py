"""storeengine's embedded default next to PocketBase out of the box, same machine, same run (issue 26).

Both on their own embedded database with their defaults: `storeengine serve` without
STORE_MONGODB_URI (STORE_DATA_DIR a fresh folder) and `pocketbase serve` on its own SQLite. The same
store shape, 3,000 entities seeded through each server's API as its one authenticated non-admin user,
then with wrk, peers in turn phase by phase (peers/compare.py): GET by id, the list of 1,000 (one
client, and 32), and a counted POST into the seeded store (every server's store grows alike). Also
`storeengine serve --workers 2`, reported beside one process, where the server accepts it on the
embedded database (PocketBase uses both cores).

Prints the table, CPU per request, and a line per target of issue 26, `ok` or `!!! MISSED !!!`;
`@result {json}` with BENCH_JSON=1. BENCH_PEER_SECONDS (default 5), BENCH_PEER_COUNT (3000),
BENCH_PEER_POSTS (500), BENCH_PEER_ROUNDS (2). BENCH_BASELINE=<source tree>: the same engine (one
process) from that tree as `baseline`, in the same run (before / after a change).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from peers import compare
from peers._base import stop_on_sigterm
from peers.compare import Figures, Ratio
from peers.engine import storeengine
from peers.pocketbase import pocketbase
from peers.target import Target

# The workers of the second storeengine (BENCH_PEER_WORKERS, default 2: one per core of the machine
# PocketBase's Go runtime uses as well).
N_WORKERS = int(os.environ.get("BENCH_PEER_WORKERS", "2"))
ENGINE, WORKERS, POCKETBASE = "storeengine", f"storeengine x{N_WORKERS}", "PocketBase"
BASELINE = os.environ.get("BENCH_BASELINE")


def targets_for(ours: str) -> list[Ratio]:
    return [Ratio(compare.GET, ours, POCKETBASE, 1.0), Ratio(compare.LIST1, ours, POCKETBASE, 1.0),
            Ratio(compare.LIST32, ours, POCKETBASE, 1.0), Ratio(compare.POST, ours, POCKETBASE, 1.0)]


def start(stack: contextlib.ExitStack) -> list[Target]:
    targets = [stack.enter_context(storeengine(None))]
    if BASELINE:
        targets.append(stack.enter_context(storeengine(None, name="baseline", source=Path(BASELINE).resolve())))
    try:
        targets.append(stack.enter_context(storeengine(None, workers=N_WORKERS, name=WORKERS)))
    except RuntimeError as exc:
        code = re.search(r"exited with (-?\d+)", str(exc))
        print(f"  {WORKERS:<16} NOT MEASURED: `storeengine serve --workers {N_WORKERS}` on the embedded database "
              f"{'refused to start (exit ' + code[1] + ', its reason on stderr)' if code else 'failed: ' + str(exc)}",
              flush=True)
    targets.append(stack.enter_context(pocketbase()))
    return targets


def main() -> int:
    stop_on_sigterm()
    # The embedded default is what this compares: never a MongoDB server from the caller's environment.
    os.environ.pop("STORE_MONGODB_URI", None)
    print("vs_pocketbase: storeengine's embedded default and PocketBase out of the box, same run;\n"
          f"  {compare.COUNT:,} entities each, seeded through each server's API;\n  {compare.method()}", flush=True)
    figures: Figures = {}
    with contextlib.ExitStack() as stack:
        targets = start(stack)
        for target in targets:
            print(f"  {target.name:<16} {target.setup}", flush=True)
        seeded = compare.prepare(targets)
        print("  seeding through the API, 16 in flight: " +
              ", ".join(f"{name} {compare.COUNT / s:,.0f}/s" for name, s in seeded.items()), flush=True)
        compare.measure(targets, compare.READS, figures=figures)
        compare.measure(targets, [compare.POST], figures=figures, rounds=1)
    compare.table(figures)
    print("  targets of issue 26 (÷ PocketBase out of the box):")
    rows = compare.ratios(figures, targets_for(ENGINE) + (targets_for(WORKERS) if WORKERS in figures else []))
    compare.result_line(figures, rows, {"count": compare.COUNT})
    if BASELINE:
        compare.against_baseline(figures, ENGINE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
