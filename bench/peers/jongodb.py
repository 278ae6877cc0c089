"""jongodb: a fast in-memory MongoDB-wire server (npm `@jongodb/memory-server-bin-linux-x64-gnu`).

The package ships one native executable (bin/jongodb, a GraalVM image of the Java engine). Started
with `--host=127.0.0.1 --port=0` it picks a free port and prints `JONGODB_URI=mongodb://...` once
it listens. It keeps everything in memory and is gone at exit.

What it cannot serve, as met by these benchmarks (jongodb 0.1.6):
- projections are ignored: `find(filter, {"a": 1})` returns whole documents;
- no listCollections, listDatabases, drop, dropDatabase, create, collMod, serverStatus, and no
  change streams (`$changeStream`);
- an insert costs time in proportion to the collection's size and more: 0.3 ms at 200 documents,
  9 ms at 1,200, 20 ms at 1,000 and 180 ms at 3,000 (single inserts, the second series on a loaded
  machine); insert_many is cheaper per document but grows too. A POST benchmark on a seeded store
  would time jongodb, and seeding through an API takes minutes.
Reads are fast and flat: find_one by _id about 0.3 ms at 1,200 documents. But:
- it serves on one core: six client threads sending find_one by _id kept it at 1.02-1.03 cores (its
  CPU time over the wall time), so a peer's GET rate here is bounded by jongodb's CPU per GET;
- a find sorted by `_id` costs it about twice the same find in natural order (1,000 of 3,000
  documents: 11-13 against 5-8.5 ms for the floor's, 34-52 against 18.5-30 ms for storeengine's),
  a sort MongoDB serves from the `_id` index; and with projections ignored it converts every
  field of every document (storeengine's `_change`: 34-52 ms sorted with it, 24.5-33.5 without).
  `bench/jongodb_costs.py` measures both (these figures: three of its runs, 2026-12-06).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pymongo

from peers._base import LOGS, npm_install, process

PACKAGE = "@jongodb/memory-server-bin-linux-x64-gnu"
VERSION = "0.1.6"


def _uri_from_log(name: str) -> str | None:
    path = LOGS / f"{name}.log"
    for text in path.read_text(errors="replace").splitlines() if path.exists() else []:
        if text.startswith("JONGODB_URI="):
            return text.split("=", 1)[1].strip()
    return None


@contextlib.contextmanager
def jongodb(name: str = "jongodb") -> Iterator[tuple[str, int]]:
    """Yield (a mongodb:// URI for direct connection, the server's pid) while jongodb runs."""
    binary = npm_install({PACKAGE: VERSION}) / PACKAGE / "bin" / "jongodb"
    with process([str(binary), "--host=127.0.0.1", "--port=0"], name) as proc:
        deadline = time.monotonic() + 30
        while (found := _uri_from_log(name)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jongodb did not start (exit {proc.poll()})")
            time.sleep(0.05)
        # The printed URI names a database ("/test"): keep host and port, let each peer pick its own.
        host = found.split("://", 1)[1].split("/", 1)[0]
        uri = f"mongodb://{host}/?directConnection=true"
        client: pymongo.MongoClient[dict[str, object]]
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            client.admin.command("ping")
        yield uri, proc.pid
