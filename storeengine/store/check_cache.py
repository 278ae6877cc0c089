"""The console's schema report (API.md 15): after each load of a store's schema file, one
background dry run of that schema over the whole store, cached until the next load.

The page asks for the cached report and never waits for a scan: while a scan runs it gets the
counts so far. A new load of the file cancels the running scan and starts over; a scan that
meets an unavailable database tries again a little later. Memory is the check's own bound
(one batch in hand, the first `SHOWN` failures), whatever the store's size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from bson import ObjectId

from storeengine.core.errors import StoreError, Unavailable
from storeengine.core.formats import utcnow
from storeengine.core.types import Doc
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import StorageAPI
from storeengine.store.checks import MAX_LIMIT, SHOWN, check_entities

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # after the database was unavailable
BATCH = 200  # entities per query: short turns on the event loop and the database
# After each batch, rest as long again as it took: the check takes at most about half of the
# server's time (100,000 entities: ~10 s flat out on the embedded database left lists with a
# p99 of ~370 ms; see bench/schema_check.py).
DUTY = 0.5


@dataclass
class CachedCheck:
    """One store's report; `state` is running until the scan reached the store's end."""

    state: str = "running"  # running | done | failed
    checked: int = 0
    invalid: int = 0
    entities: list[Doc] = field(default_factory=list)
    started: datetime = field(default_factory=utcnow)
    finished: datetime | None = None
    error: str | None = None

    def to_json(self) -> Doc:
        return {"state": self.state, "checked": self.checked, "invalid": self.invalid, "entities": self.entities,
                "startedAt": self.started, "finishedAt": self.finished, "error": self.error}


class SchemaChecks:
    """Background checks of each store's current schema, one task per store at most."""

    def __init__(self, storage: StorageAPI, *, retry_seconds: float = RETRY_SECONDS, duty: float = DUTY) -> None:
        self.storage = storage
        self.retry_seconds = retry_seconds
        self.duty = duty
        self._reports: dict[str, CachedCheck] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def report(self, name: str) -> CachedCheck | None:
        """The cached report of a store (None before its first load was seen)."""
        return self._reports.get(name)

    def schedule(self, store: StoreSchema) -> None:
        """The store's schema was (re)loaded: check every entity against it, in the background."""
        self._cancel(store.name)
        report = self._reports[store.name] = CachedCheck()
        self._tasks[store.name] = asyncio.get_running_loop().create_task(self._run(store, report))

    def keep_only(self, names: set[str]) -> None:
        """Forget the stores whose files are gone."""
        for name in set(self._reports) - names:
            self._cancel(name)
            self._reports.pop(name, None)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def _run(self, store: StoreSchema, report: CachedCheck) -> None:
        try:
            while True:
                try:
                    await self._scan(store, report)
                    return
                except Unavailable as exc:
                    report.error = exc.message  # shown while it waits; the scan starts over
                    await asyncio.sleep(self.retry_seconds)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            self._fail(store, report, exc.message)
        except Exception as exc:  # a background task: say so on the page instead of dying unseen
            log.exception("schema check of %r failed", store.name)
            self._fail(store, report, f"{type(exc).__name__}: {exc}")
        finally:
            if self._tasks.get(store.name) is asyncio.current_task():
                self._tasks.pop(store.name)

    async def _scan(self, store: StoreSchema, report: CachedCheck) -> None:
        # Counts restart with the scan: a retry after an outage must not count entities twice.
        report.checked, report.invalid, report.entities, report.error = 0, 0, [], None
        after: ObjectId | None = None
        done = [0, 0]  # (checked, invalid) of the pages before this one

        def progress(checked: int, invalid: int) -> None:
            report.checked, report.invalid = done[0] + checked, done[1] + invalid

        turn = [time.perf_counter()]

        async def rest() -> None:
            worked = time.perf_counter() - turn[0]
            await asyncio.sleep(worked * (1 - self.duty) / self.duty)
            turn[0] = time.perf_counter()

        while True:
            page = await check_entities(self.storage, store, limit=MAX_LIMIT, after=after, batch=BATCH,
                                        progress=progress, between=rest)
            done[:] = [report.checked, report.invalid]
            report.entities.extend(page.entities[:SHOWN - len(report.entities)])
            if page.next is None:
                break
            after = ObjectId(page.next)
        report.state, report.finished = "done", utcnow()

    def _fail(self, store: StoreSchema, report: CachedCheck, message: str) -> None:
        report.state, report.error, report.finished = "failed", message, utcnow()
        log.error("schema check of %r failed: %s", store.name, message)

