"""Seeding a peer's store, and checking the answers the load tool will not read.

Two ways, said in each script's header:
- through the peer's own API (`through_api`): POSTs as its user, 16 in flight;
- in the database (`in_database`, MongoDB peers): one entity POSTed through the API, then the
  document the server stored for it copied with a new id and the i-th field values, in batches.
  On jongodb, whose insert slows with the collection's size (about 180 ms an insert at 3,000
  documents on a loaded machine), 3,000 POSTs took 4 to 6 minutes a peer; these copies take seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from datetime import datetime
from typing import Any

import httpx
import pymongo
from bson import ObjectId

from peers.target import LIST_SIZE, Target, fields

BATCH = 500


async def through_api(target: Target, count: int, concurrency: int = 16, first: int = 0) -> list[str]:
    """POST entities first..first+count-1 as the peer's user; their ids in order."""
    todo = iter(range(first, first + count))
    ids: dict[int, str] = {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.base, headers=target.headers, timeout=60, limits=limits) as http:

        async def worker() -> None:
            for i in todo:
                r = await http.post(target.create_path, json=target.body(i))
                if r.status_code not in (200, 201):
                    raise RuntimeError(f"{target.name}: seeding POST answered {r.status_code}: {r.text[:300]}")
                ids[i] = target.new_id(r.json())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [ids[i] for i in sorted(ids)]


def _new_id(like: Any) -> Any:
    if isinstance(like, ObjectId):
        return ObjectId()
    alphabet = string.ascii_letters + string.digits  # Parse's objectId: 10 of these
    return "".join(secrets.choice(alphabet) for _ in range(len(like)))


def in_database(target: Target, uri: str, count: int) -> list[str]:
    """One entity through the API, then count - 1 copies of its stored document; the ids in order."""
    assert target.stored_in is not None
    database, name = target.stored_in
    first = asyncio.run(through_api(target, 1, 1))[0]
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(uri, document_class=dict) as client:
        collection = client[database][name]
        template = collection.find_one({"_id": ObjectId(first) if ObjectId.is_valid(first) else first})
        if template is None:
            raise RuntimeError(f"{target.name}: the entity just created is not in {database}.{name}")
        if target.before_copies is not None:
            target.before_copies(client[database], count)
        ids, batch = [first], []
        for i in range(1, count):
            body = target.body(i)
            doc = {**template, "_id": _new_id(template["_id"]), "name": body["name"], "price": body["price"],
                   "tags": body["tags"]}
            # stored as the server stores it: a BSON date where it made one, else the body's value
            doc["listedAt"] = fields(i)["listedAt"] if isinstance(template["listedAt"], datetime) else body["listedAt"]
            if target.copied is not None:
                target.copied(doc, i)
            batch.append(doc)
            ids.append(str(doc["_id"]))
            if len(batch) == BATCH or i == count - 1:
                collection.insert_many(batch)
                batch = []
    return ids


def check(target: Target) -> None:
    """One GET by id and one list through plain httpx: the answers the load tool will not read."""
    with httpx.Client(base_url=target.base, headers=target.headers, timeout=60) as http:
        r = http.get(target.item_prefix + target.ids[-1])
        if r.status_code != 200:
            raise RuntimeError(f"{target.name}: GET by id answered {r.status_code}: {r.text[:300]}")
        r = http.get(target.list_path)
        if r.status_code != 200 or target.listed(r.json()) != LIST_SIZE:
            raise RuntimeError(f"{target.name}: the list answered {r.status_code} with "
                               f"{target.listed(r.json()) if r.status_code == 200 else r.text[:300]}")
