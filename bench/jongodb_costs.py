"""What jongodb (bench/peers/jongodb.py, the fast wire lane of vs_parse.py) spends on a list page,
by the shape of the documents and of the find, and how many cores it serves on.

vs_parse.py's list figures are mostly jongodb's time (its CPU per page beside ours). This tells
apart what in that time comes from the documents and the query every engine sends, and what
from jongodb's own ways that MongoDB does not share:

1. jongodb's CPU for one page of 1,000 of 3,000 documents, sorted by `_id` (what storeengine and
   the floor ask) and in natural order (what Parse Server asks by default), for three shapes: the
   floor's documents (the bench fields), storeengine's stored entities (the fields, `owner`,
   `group`, `access`, `branch`, the dates and the carried `_change`), and the same without
   `_change` (what MongoDB would send: the engine's projection leaves it out, jongodb ignores
   projections); storeengine's with its access rule (`$or` of owner and access) as well.
2. The cores jongodb uses while several clients send it find_one by `_id` at once.

`python bench/jongodb_costs.py` (jongodb from npm on first use, as for vs_parse.py).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pymongo
from _common import line
from bson import ObjectId
from peers.jongodb import jongodb
from peers.procstat import cpu_seconds
from peers.target import LIST_SIZE, fields

COUNT, PAGES, CLIENTS, SECONDS = 3000, 20, 6, 5.0
OWNER = ObjectId()
Doc = dict[str, Any]


def floor_doc(i: int) -> Doc:
    return {"_id": ObjectId(), **fields(i)}


def engine_doc(i: int, carried: bool = True) -> Doc:
    """An entity as storeengine stores it (naive UTC dates, as the engine writes them)."""
    at = datetime(2026, 1, 1) + timedelta(seconds=i)
    item = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in fields(i).items()}
    doc: Doc = {"_id": ObjectId(), **item, "owner": OWNER, "group": None, "access": [], "branch": [],
                "createdAt": at, "updatedAt": at}
    if carried:
        doc["_change"] = {"seq": i + 1, "op": "create", "at": at, "by": OWNER}
    return doc


SHAPES: dict[str, Callable[[int], Doc]] = {
    "floor's documents": floor_doc,
    "storeengine's entities": engine_doc,
    "the same without _change": lambda i: engine_doc(i, carried=False),
}
ACCESS_RULE = {"$or": [{"owner": OWNER}, {"access": {"$in": [OWNER]}}]}


def page_cpu_ms(coll: Any, query: Doc, ordered: bool, pid: int) -> float:
    """jongodb's CPU per page of LIST_SIZE, over PAGES pages after a warm-up."""

    def page() -> None:
        cursor = coll.find(query)
        if ordered:
            cursor = cursor.sort("_id", 1)
        if len(list(cursor.limit(LIST_SIZE))) != LIST_SIZE:
            raise RuntimeError("a short page")

    for _ in range(3):
        page()
    before = cpu_seconds([pid])
    for _ in range(PAGES):
        page()
    return (cpu_seconds([pid]) - before) * 1000 / PAGES


def cores_used(uri: str, pid: int, some_id: ObjectId) -> float:
    """jongodb's CPU seconds per wall second while CLIENTS threads send find_one by `_id`."""
    stop = time.monotonic() + SECONDS

    def client() -> None:
        own: pymongo.MongoClient[Doc]
        with pymongo.MongoClient(uri) as own:
            coll: Any = own["costs"]["engine"]
            while time.monotonic() < stop:
                coll.find_one({"_id": some_id})

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    before, start = cpu_seconds([pid]), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (cpu_seconds([pid]) - before) / (time.monotonic() - start)


def main() -> None:
    print(f"jongodb_costs: jongodb's CPU per page of {LIST_SIZE} of {COUNT} documents (the mean of {PAGES}"
          f" pages),\n  by document shape and order; then its cores under {CLIENTS} clients", flush=True)
    client: pymongo.MongoClient[Doc]
    with jongodb("jongodb-costs") as (uri, pid), pymongo.MongoClient(uri) as client:
        database: Any = client["costs"]
        names = dict(zip(SHAPES, ("floor", "engine", "lean"), strict=True))
        for shape, make in SHAPES.items():
            database[names[shape]].insert_many([make(i) for i in range(COUNT)])
        for shape in SHAPES:
            coll = database[names[shape]]
            queries: list[tuple[str, Doc]] = [("", {})]
            if shape != "floor's documents":
                queries.append((", access rule", ACCESS_RULE))
            for label, query in queries:
                sorted_ms = page_cpu_ms(coll, query, True, pid)
                natural_ms = page_cpu_ms(coll, query, False, pid)
                line(f"{shape}{label}", f"sorted by _id {sorted_ms:6.1f} ms, natural order {natural_ms:6.1f} ms")
        some = database["engine"].find_one()
        if some is None:
            sys.exit("nothing stored")
        line(f"cores used, {CLIENTS} clients of find_one by _id", f"{cores_used(uri, pid, some['_id']):.2f}")


if __name__ == "__main__":
    main()
