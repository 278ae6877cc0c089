"""storeengine next to Parse Server, Eve and the floor on one jongodb wire server, in the same run
(issue 21; POST next to Eve: issue 20).

jongodb (npm) is a fast in-memory MongoDB-wire server: unlike mongoeco, its own cost does not pull
every ratio toward 1. Reads: one jongodb, each peer a database of its own on it holding 3,000
entities of its one authenticated non-admin user (the floor has no users): one made through the
peer's API, the rest copies of the document the peer stored for it, put in the database (3,000
POSTs into jongodb take minutes a peer: peers/seeding.py); then GET by id and the list of 1,000
with wrk, phase by phase, peers in turn (peers/compare.py). Writes: jongodb's insert slows with
the collection's size (peers/jongodb.py), which on a seeded store would time jongodb, not the
servers; so POST runs on a second, fresh jongodb where every peer starts empty, and each makes the
same number of entities.

For the reads, a second floor (`floor, our docs`) reads storeengine's own stored entities: the
floor's documents hold the bench fields only, ours also the engine's (owner, access, timestamps,
the carried change), which jongodb converts field by field; storeengine / that floor is what is
left for the engine's own work (printed, no target).

Prints the table, each server's CPU per request beside wall time (and jongodb's), and a line per
target of issue 21, `ok` or `!!! MISSED !!!`; `@result {json}` with BENCH_JSON=1.
BENCH_PEER_SECONDS (default 5) per timed run, BENCH_PEER_COUNT (3000) entities, BENCH_PEER_POSTS (500),
BENCH_PEER_ROUNDS (2), BENCH_PEER_TIMEOUT (30) seconds an answer may take. BENCH_BASELINE=<source tree>
adds that tree's engine as `baseline` (e.g. a checkout of main: before and after in one run).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from peers import compare
from peers._base import stop_on_sigterm
from peers.compare import Figures, Ratio
from peers.engine import storeengine
from peers.eve import eve_server
from peers.floor import floor
from peers.jongodb import jongodb
from peers.parse import parse_server
from peers.target import Target

ENGINE, PARSE, EVE, FLOOR = "storeengine", "Parse Server", "Eve", "floor"
SAME_DOCS = "floor, our docs"  # the floor reading storeengine's own stored entities (reads only; no target)
BASELINE = os.environ.get("BENCH_BASELINE")  # a source tree served beside this one as `baseline`
TARGETS = [
    Ratio(compare.LIST1, ENGINE, PARSE, 1.0), Ratio(compare.LIST32, ENGINE, PARSE, 1.0),
    Ratio(compare.LIST1, ENGINE, FLOOR, 1.3), Ratio(compare.LIST32, ENGINE, FLOOR, 1.3),
    Ratio(compare.GET, ENGINE, PARSE, 2.5), Ratio(compare.GET, ENGINE, FLOOR, 0.95),
    Ratio(compare.POST, ENGINE, EVE, 0.8), Ratio(compare.POST, ENGINE, PARSE, 1.0),
]


def start_all(stack: contextlib.ExitStack, uri: str, reads: bool = False) -> list[Target]:
    targets = [stack.enter_context(storeengine(uri))]
    if BASELINE:  # the same engine from another source tree, in the same run (before / after a change)
        targets.append(stack.enter_context(storeengine(uri, database="bench_baseline", name="baseline",
                                                       source=Path(BASELINE).resolve())))
    targets += [stack.enter_context(parse_server(uri)), stack.enter_context(eve_server(uri)),
                stack.enter_context(floor(uri))]
    if reads:  # the floor's cost on our documents: what the engine's fields cost apart from its work
        targets.append(stack.enter_context(floor(uri, "bench_storeengine", SAME_DOCS, serves_of=ENGINE)))
    return targets


def main() -> int:
    stop_on_sigterm()
    print("vs_parse: storeengine, Parse Server, Eve and the floor on jongodb (MongoDB wire), same run;\n"
          f"  reads on one jongodb, {compare.COUNT:,} entities each, seeded in the database; POST on a second,\n"
          f"  fresh jongodb, every peer from empty;\n  {compare.method()}", flush=True)
    figures: Figures = {}
    with jongodb() as (uri, db_pid), contextlib.ExitStack() as stack:
        targets = start_all(stack, uri, reads=True)
        for target in targets:
            print(f"  {target.name:<14} {target.setup}", flush=True)
        seeded = compare.prepare(targets, uri=uri)
        print("  seeded in the database (one entity through the API, then copies of its stored document): " +
              ", ".join(f"{name} {s:.0f} s" for name, s in seeded.items()), flush=True)
        compare.measure(targets, compare.READS, db_pids=[db_pid], figures=figures)
    with jongodb("jongodb-posts") as (uri, db_pid), contextlib.ExitStack() as stack:
        compare.measure(start_all(stack, uri), [compare.POST], db_pids=[db_pid], figures=figures, rounds=1)
    compare.table(figures, db_name="jongodb")
    print("  targets of issue 21 (and of issue 20: POST next to Eve):")
    rows = compare.ratios(figures, TARGETS)
    compare.result_line(figures, rows, {"count": compare.COUNT})
    compare.untargeted(figures, ENGINE, SAME_DOCS, f"{ENGINE} / the floor on the same documents ({SAME_DOCS}; "
                       "no target: what is left is the engine's own work)", compare.READS)
    if BASELINE:
        compare.against_baseline(figures, ENGINE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
