"""Storage: the seam between the engine and a database, and its backends.

`api` is the seam (a few Protocols); `mongo` is MongoDB through the driver, `sqlite` the
embedded database. `connect(settings)` is the one place that chooses: MongoDB when
STORE_MONGODB_URI is set, else SQLite in STORE_DATA_DIR. This package is the only one that
imports a database driver; it imports nothing of ours but `core` and `settings`,
and raises only StoreErrors.
"""

from __future__ import annotations

from storeengine.settings import Settings
from storeengine.storage.api import StorageAPI


def connect(settings: Settings) -> StorageAPI:
    if settings.mongodb_uri is None:
        from storeengine.storage.sqlite import SqliteStorage

        return SqliteStorage.open(settings)
    from storeengine.storage.mongo import Storage

    return Storage.connect(settings)
