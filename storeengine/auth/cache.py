"""A small time-bounded cache for credential lookups (bounded staleness across processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, seconds: float, max_items: int = 10000) -> None:
        self._seconds = seconds
        self._max = max_items
        self._items: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return hit[1]

    def put(self, key: str, value: V) -> None:
        if self._seconds <= 0:
            return
        if len(self._items) >= self._max:
            self._items.clear()  # crude but bounded; entries are cheap to refetch
        self._items[key] = (time.monotonic() + self._seconds, value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def drop_where(self, predicate: Callable[[V], bool]) -> None:
        for key in [k for k, (_, v) in self._items.items() if predicate(v)]:
            self._items.pop(key, None)
