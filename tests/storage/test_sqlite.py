"""The storage conformance suite (storeengine/storage/testing.py) on the embedded database, in
memory and in a folder (WAL, reader threads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storeengine.storage.sqlite import SqliteStorage
from storeengine.storage.testing import StorageConformance


class TestInMemory(StorageConformance):
    @pytest.fixture
    def storage(self) -> Iterator[SqliteStorage]:
        storage = SqliteStorage(":memory:", name="conformance")
        yield storage
        storage.shut()


class TestInAFolder(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SqliteStorage]:
        storage = SqliteStorage(str(tmp_path / "conformance.db"), name="conformance")
        yield storage
        storage.shut()
