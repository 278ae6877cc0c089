"""The console's background schema checks (store/check_cache.py): never waited for, counts so far
while running, a reload starts over, an unavailable database is retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from storeengine.core.errors import Unavailable
from storeengine.model.schema import compile_schema
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.api import StorageAPI
from storeengine.store.check_cache import SchemaChecks

LOOSE = compile_schema("things", {"type": "object", "properties": {"n": {"type": "integer"}}})
STRICT = compile_schema("things", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5}}})


@pytest.fixture
async def storage() -> Any:
    storage = connect(Settings(data_dir=":memory:"))
    await storage.collection("things").insert_many([{"_id": ObjectId(), "n": n} for n in range(10)])
    yield storage
    await storage.close()


class Gate:
    """Holds every find of the collection until opened; fails the first `failures` with 503."""

    def __init__(self, storage: StorageAPI, failures: int = 0) -> None:
        self.opened, self.calls, self.failures = asyncio.Event(), 0, failures
        coll = storage.collection("things")
        original = coll.find

        async def find(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise Unavailable("Database unavailable")
            await self.opened.wait()
            return await original(*args, **kwargs)

        coll.find = find  # type: ignore[method-assign]


async def done(checks: SchemaChecks) -> dict[str, Any]:
    for _ in range(200):
        report = checks.report("things")
        assert report is not None
        if report.state != "running":
            return report.to_json()
        await asyncio.sleep(0.01)
    raise AssertionError("the check did not end")


async def test_the_report_is_there_at_once_and_counts_when_the_scan_ends(storage):
    gate = Gate(storage)
    checks = SchemaChecks(storage)
    checks.schedule(STRICT)
    await asyncio.sleep(0.05)
    running = checks.report("things")
    assert running is not None and running.state == "running" and running.checked == 0
    gate.opened.set()
    report = await done(checks)
    assert report["state"] == "done" and report["checked"] == 10 and report["invalid"] == 5
    assert [e["fields"] for e in report["entities"]] == [{"n": "must be >= 5"}] * 5
    await checks.close()


async def test_a_reload_cancels_the_running_scan_and_starts_over(storage):
    gate = Gate(storage)
    checks = SchemaChecks(storage)
    checks.schedule(STRICT)
    await asyncio.sleep(0.05)
    checks.schedule(LOOSE)
    gate.opened.set()
    report = await done(checks)
    assert report["invalid"] == 0 and report["checked"] == 10
    await asyncio.sleep(0.05)  # the cancelled scan leaves the new report alone
    assert checks.report("things").to_json() == report  # type: ignore[union-attr]
    checks.keep_only(set())
    assert checks.report("things") is None
    await checks.close()


async def test_an_unavailable_database_is_retried_and_counted_once(storage):
    gate = Gate(storage, failures=2)
    gate.opened.set()
    checks = SchemaChecks(storage, retry_seconds=0.01)
    checks.schedule(STRICT)
    report = await done(checks)
    assert gate.calls == 3 and report["state"] == "done"
    assert report["checked"] == 10 and report["invalid"] == 5 and report["error"] is None
    await checks.close()
