"""Dry runs of a schema over the stored entities (API.md 15): which entities a schema (a
candidate, or the one in force) rejects, with the messages a write's 400 would give.

The scan walks the store in `_id` order, one bounded batch per query (`_id > last`), so memory
stays bounded whatever the store's size: only the batch in hand and the first `SHOWN` failures
are kept. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bson import ObjectId

from storeengine.core.types import Doc
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import StorageAPI

MAX_LIMIT = 100_000  # entities checked by one call (the default too)
BATCH = 1000  # entities per query
SHOWN = 100  # failing entities listed in one answer (all are counted)
Progress = Callable[[int, int], None]  # (checked, invalid) so far


@dataclass
class CheckReport:
    checked: int = 0
    invalid: int = 0
    entities: list[Doc] = field(default_factory=list)
    next: str | None = None  # `after` of the next call, None when the store was checked to its end

    def to_json(self) -> Doc:
        return {"checked": self.checked, "invalid": self.invalid, "entities": self.entities, "next": self.next}


async def check_entities(storage: StorageAPI, schema: StoreSchema, *, limit: int = MAX_LIMIT,
                         after: ObjectId | None = None, batch: int = BATCH,
                         progress: Progress | None = None,
                         between: Callable[[], Awaitable[None]] | None = None) -> CheckReport:
    """Check up to `limit` entities after `after` (in `_id` order) against `schema`; `between` is
    awaited between batches (a background check gives way to the server's other work there)."""
    coll = storage.collection(schema.name)
    report = CheckReport()
    last = after
    while report.checked < limit:
        size = min(batch, limit - report.checked)
        docs = await coll.find({"_id": {"$gt": last}} if last is not None else {}, None, [("_id", 1)], 0, size)
        for doc in docs:
            if problems := schema.problems(doc):
                report.invalid += 1
                if len(report.entities) < SHOWN:
                    report.entities.append({"_id": doc["_id"], "fields": problems})
        report.checked += len(docs)
        if progress is not None:
            progress(report.checked, report.invalid)
        if len(docs) < size:
            return report
        last = docs[-1]["_id"]
        del docs
        if between is not None:
            await between()
    if last is not None and await coll.find_one({"_id": {"$gt": last}}, {"_id": 1}) is not None:
        report.next = str(last)
    return report
