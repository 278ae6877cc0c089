"""A store's indexes in one database (the public one, or a tenant's): made when its schema file
is (re)loaded, and in any case before the store's next write there.

The maintenance tick makes them within a poll interval; a write that came first would land
without them, and a duplicate written before a unique index then kept that index from ever being
made (a tenant's copy of a new store, written to within its first second). So a write waits for
its store's due indexes. Each index is made on its own: one that cannot be made (duplicates
already stored) is reported on the store and keeps none of the others from being made.
"""

from __future__ import annotations

from collections.abc import Sequence

from storeengine.core.errors import StoreError, Unavailable
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.api import StorageAPI
from storeengine.store.carried import SEQ as CARRIED_SEQ

# Indexes the engine itself queries on, for every store.
ENGINE_INDEXES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("createdAt", 1),), (("owner", 1),), (("group", 1),), (("access", 1),), (("branch", 1),),
    ((CARRIED_SEQ, 1),),  # the changes entities carry, read by number (feed.py, B)
)


class Indexes:
    def __init__(self, registry: Registry, storage: StorageAPI, where: str = "") -> None:
        self.registry, self.storage = registry, storage
        self.where = where  # which database, in a reported problem ("" for the public one)
        self._due: dict[str, StoreSchema] = {}

    def due(self, store: StoreSchema) -> None:
        """`store` was (re)loaded: its indexes are to be made here."""
        self._due[store.name] = store

    def pending(self) -> Sequence[str]:
        return list(self._due)

    async def ready(self, name: str) -> None:
        """Before a write to store `name`: its due indexes made (a dict lookup when none are)."""
        store = self._due.get(name)
        if store is None:
            return
        problems = await self.ensure(store)
        if problems:
            self.registry.set_error(name, f"cannot create indexes{self.where}: {'; '.join(problems)}")
        if self._due.get(name) is store:  # not reloaded meanwhile
            del self._due[name]

    async def ensure(self, store: StoreSchema) -> list[str]:
        """Every index of `store`, each on its own; the problems of those that could not be made.
        Unavailable (the database is down) is raised: they are made once it is back."""
        coll = self.storage.collection(store.name)
        problems = []
        for keys, unique in [*((keys, False) for keys in ENGINE_INDEXES), *((s.keys, s.unique) for s in store.indexes)]:
            try:
                await coll.ensure_index(keys, unique=unique)
            except Unavailable:
                raise
            except StoreError as exc:
                problems.append(exc.message)
        return problems
