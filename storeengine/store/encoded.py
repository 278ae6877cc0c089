"""Reads answered as the answer's JSON bytes, where a backend can make them without decoding.

The embedded database keeps each entity as JSON text that differs from the answer's form only
in tagged strings (storage/sqlite/answer.py), so a page, and the entities a page's `expand`
refers to, can leave as bytes. Not part of the storage seam: the service asks for it where a
backend has it, and decodes otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from storeengine.core.types import Doc

# The values of one field across a page, dictionary-encoded: each entity's code (hashable; None
# for no value), and each distinct code's value. A page of 1,000 entities refers to 100 parents:
# 100 values to decode and follow, one lookup per entity.
Column = tuple[list[Any], dict[Any, Any]]


@runtime_checkable
class EncodedReads(Protocol):
    def can_drop(self, names: Iterable[str]) -> bool:
        """May `find_answer` leave these top-level fields out (its `drop`)? The backend's own rule
        (the embedded database splices them into SQL's JSON paths: plain names only)."""
        ...

    async def find_answer(self, query: Mapping[str, Any], sort: Sequence[tuple[str, int]] | None = None,
                          skip: int = 0, limit: int = 0,
                          fields: Sequence[str] = (), drop: Sequence[str] = (), opened: bool = False,
                          ) -> tuple[list[bytes], list[Column], Doc | None]:
        """The matching entities as JSON objects (bytes; `opened`: without their closing brace),
        with top-level fields `drop` left out; the column of each of `fields` (`_id` included when
        asked; values shared by the rows of a code are read-only); and the last entity decoded (a
        page's keyset token is made from it)."""
        ...
