"""The storage conformance suite (storeengine/storage/testing.py) over the MongoDB wire protocol
(mongoeco). Where mongoeco, not the suite, differs from MongoDB, the case is listed in `quirks`
and expected to fail here (strict: it is reported once mongoeco is fixed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from storeengine.settings import Settings
from storeengine.storage.mongo import Storage
from storeengine.storage.testing import StorageConformance
from tests.lanes import WireDatabase

# Where mongoeco 4.11 answers otherwise than MongoDB (whose answers, from its own jstests and
# documentation, are the suite's expectations).
NO_TYPE_BRACKETING = "mongoeco compares across types ($gt/$lt match values of other types)"
DOTTED_NULL = ("mongoeco's null on a path through an array: it matches arrays of scalars and misses an "
               "element without the field (MongoDB: jstests/core/null_query_semantics.js)")


class TestWire(StorageConformance):
    query_quirks: ClassVar[dict[str, str]] = {
        "dotted_eq_null": DOTTED_NULL, "dotted_ne_null": DOTTED_NULL,
        "gt_number_is_type_bracketed": NO_TYPE_BRACKETING, "lt_string_is_type_bracketed": NO_TYPE_BRACKETING,
        "gt_false_is_booleans_only": NO_TYPE_BRACKETING, "lte_date": NO_TYPE_BRACKETING,
        "gt_objectid": NO_TYPE_BRACKETING, "not": NO_TYPE_BRACKETING,
        "gte_null_is_eq_null": "mongoeco: $gte null matches every non-null value and not a missing field",
        "gt_null_is_nothing": "mongoeco: $gt null matches every non-null value",
    }

    @pytest.fixture
    async def storage(self, wire_db: WireDatabase) -> AsyncIterator[Storage]:
        storage = Storage.connect(Settings(mongodb_uri=wire_db.uri, database=wire_db.name))
        yield storage
        await storage.close()
