"""The embedded database (mongomock) kept off the event loop.

mongomock is pure Python: a 10,000-entity scan takes hundreds of ms and would block every
other client if run on the loop. Every call runs on ONE worker thread (mongomock is not
thread-safe, and one thread also means calls never interleave), reads with a deadline
(STORE_QUERY_TIMEOUT_MS -> ExecutionTimeout -> 503, as `maxTimeMS` does on MongoDB).
Queries are rewritten where mongomock differs from MongoDB, and `$regex` is matched by RE2."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bson import Regex
from pymongo.errors import ExecutionTimeout

from storeengine.core.regex import compile_linear
from storeengine.core.types import Doc

T = TypeVar("T")
# The worker holds the GIL while mongomock runs; the loop thread gets it back only when the
# worker is forced to switch. 1 ms (default 5 ms) keeps /healthz well under 100 ms at p99
# during a 10,000-entity scan (bench/embedded_latency.py, README).
SWITCH_INTERVAL = 0.001
_job = threading.local()


def check_deadline() -> None:
    """Raise in the worker once the current read is past its deadline (cooperative cancel)."""
    deadline: float | None = getattr(_job, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise ExecutionTimeout("operation exceeded time limit")


class _Matcher:
    """What mongomock calls `.search` on: RE2, checking the deadline on each value."""

    def __init__(self, program: Any) -> None:
        self._program = program

    def search(self, text: str) -> Any:
        check_deadline()
        return self._program.search(text)


class LinearRegex(Regex):  # type: ignore[type-arg]
    """A `$regex` that mongomock compiles (via `try_compile`) to RE2 instead of Python `re`."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self._program = compile_linear(pattern)

    def try_compile(self) -> Any:
        return _Matcher(self._program)

    def __deepcopy__(self, memo: dict[int, Any]) -> LinearRegex:
        return self  # immutable; a copy would fall back to a plain Regex (Python `re`)


def as_mongodb(node: Any) -> Any:
    """Rewrite a query where mongomock differs from MongoDB: `$regex` -> RE2, `$all: []`
    matches nothing, `$size` matches arrays only."""
    if isinstance(node, list):
        return [as_mongodb(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: Doc = {}
    for key, value in node.items():
        if key == "$regex" and isinstance(value, str):
            out[key] = LinearRegex(value)
        elif key == "$all" and value == []:
            out["$in"] = []
        elif key == "$size":
            out[key], out["$type"] = value, "array"
        else:
            out[key] = as_mongodb(value)
    return out


class Runner:
    """One worker thread for every embedded-database call."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storeengine-embedded")
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))

    async def run(self, fn: Callable[[], T], timeout_ms: int | None = None) -> T:
        """`fn()` on the worker. With a timeout (reads): ExecutionTimeout once it passes; the
        worker also stops at its next deadline check. Writes get none: they always finish."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000

        def job() -> T:
            _job.deadline = deadline
            try:
                return fn()
            finally:
                _job.deadline = None

        future = asyncio.wrap_future(self._pool.submit(job))
        if timeout_ms is None:
            return await future
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for returns a result that arrives in
        # the same loop turn as a cancellation and drops the cancellation (the server's shutdown
        # then waited for ever on its maintenance task).
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await future
        except TimeoutError:
            raise ExecutionTimeout("operation exceeded time limit") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ThreadedCollection:
    """The motor-like calls `storage.Collection` makes, on a sync mongomock collection."""

    def __init__(self, sync: Any, runner: Runner) -> None:
        self._sync = sync
        self._runner = runner

    async def find_one(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None,
                       sort: Sequence[tuple[str, int]] | None, timeout_ms: int) -> Doc | None:
        q = as_mongodb(query)
        result: Doc | None = await self._runner.run(
            lambda: self._sync.find_one(q, projection, sort=list(sort) if sort else None), timeout_ms)
        return result

    async def find(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None,
                   sort: Sequence[tuple[str, int]] | None, skip: int, limit: int, timeout_ms: int) -> list[Doc]:
        q = as_mongodb(query)

        def read() -> list[Doc]:
            cursor = self._sync.find(q, projection, skip=skip, limit=limit)
            if sort:
                cursor = cursor.sort(list(sort))
            return list(cursor)

        return await self._runner.run(read, timeout_ms)

    async def count(self, query: Mapping[str, Any], timeout_ms: int) -> int:
        q = as_mongodb(query)
        count: int = await self._runner.run(lambda: self._sync.count_documents(q), timeout_ms)
        return count

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], timeout_ms: int) -> list[Doc]:
        stages = [{"$match": as_mongodb(s["$match"])} if "$match" in s else dict(s) for s in pipeline]
        return await self._runner.run(lambda: list(self._sync.aggregate(stages)), timeout_ms)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A write or index call: no deadline (abandoning a write half-way is worse than waiting)."""
        fn = getattr(self._sync, method)
        if args and method != "insert_one":  # the first argument is a filter
            args = (as_mongodb(args[0]), *args[1:])
        return await self._runner.run(lambda: fn(*args, **kwargs))
