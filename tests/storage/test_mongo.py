"""storage/mongo.py without a server: driver errors become the engine's on every path."""

from __future__ import annotations

from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from storeengine.core.errors import StoreError
from storeengine.storage.mongo import Collection, guard

ERRORS = [OverflowError("8-byte ints"), InvalidDocument("cannot encode"), DuplicateKeyError("dup"),
          ExecutionTimeout("exceeded"), AutoReconnect("closed"), ServerSelectionTimeoutError("no server"),
          OperationFailure("other")]


class Failing:
    """A driver collection whose reads raise `error` (find: when its cursor is read)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def sort(self, *args: Any) -> Any:
        return self

    async def to_list(self, length: int | None) -> Any:
        raise self.error


async def raised(call: Any) -> StoreError:
    with pytest.raises(StoreError) as info:
        await call
    return info.value


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
async def test_reads_translate_driver_errors_as_the_guard_does(error: Exception) -> None:
    async def guarded() -> None:
        async with guard():
            raise error

    expected = await raised(guarded())
    coll = Collection(Failing(error), 1000)  # type: ignore[arg-type]
    for got in (await raised(coll.find_one({"_id": 1})), await raised(coll.find({}, sort=[("_id", 1)]))):
        assert (type(got), got.status, got.message) == (type(expected), expected.status, expected.message)
        assert got.__cause__ is expected.__cause__ and got.__suppress_context__
        assert got.__cause__ is (error if isinstance(error, (OverflowError, InvalidDocument)) else None)


async def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(KeyError):
        await Collection(Failing(KeyError("k")), 1000).find_one({})  # type: ignore[arg-type]
