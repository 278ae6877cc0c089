"""The tenant registry (API.md 12): one document per tenant in the public database's `_tenants`.

A tenant's key is a random 256-bit secret shown once; only its digest is kept, as for API keys
(passwords.digest). Every process reads the registry from the database, so they share it;
a lookup is cached for at most `cache_seconds` (≤ 5 s: rotation and deletion reach other
processes within that bound), and this process drops its cache at once when it rotates or deletes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from bson import ObjectId

from storeengine.auth.cache import TTLCache
from storeengine.auth.passwords import digest
from storeengine.core.errors import Conflict, Invalid, NotFound
from storeengine.core.formats import utcnow
from storeengine.core.types import Doc
from storeengine.storage.api import StorageAPI

NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
PROVISIONING, READY, DELETING = "provisioning", "ready", "deleting"
COLLECTION = "_tenants"
_SHOWN = {"_id": 1, "name": 1, "status": 1, "createdAt": 1}


def new_key() -> str:
    return "tk_" + secrets.token_urlsafe(32)


def shown(doc: Doc) -> Doc:
    """A tenant as the API shows it: never its key's digest."""
    return {k: doc[k] for k in _SHOWN if k in doc}


class TenantRegistry:
    def __init__(self, storage: StorageAPI, cache_seconds: float,
                 database_name: Callable[[str], str] = lambda name: name) -> None:
        self.storage = storage
        self.database_name = database_name  # a tenant's database name; 400 when it would be invalid
        self.tenants = storage.collection(COLLECTION)
        # key digest -> tenant, tenant id -> tenant; a miss (None) is not cached
        self._by_hash: TTLCache[Doc] = TTLCache(cache_seconds)
        self._by_id: TTLCache[Doc] = TTLCache(cache_seconds)

    async def ensure_indexes(self) -> None:
        await self.tenants.ensure_index([("name", 1)], unique=True)
        await self.tenants.ensure_index([("hash", 1)], unique=True)

    def check_name(self, name: Any) -> str:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise Invalid(fields={"name": "must match ^[a-z][a-z0-9-]{0,30}$"})
        self.database_name(name)
        return name

    async def create(self, name: str, status: str) -> tuple[Doc, str]:
        """Register a tenant; 409 if the name is taken (the unique index decides between concurrent
        creates). Returns the document and its key (shown once)."""
        key = new_key()
        doc: Doc = {"_id": ObjectId(), "name": name, "hash": digest(key), "status": status, "createdAt": utcnow()}
        try:
            await self.tenants.insert(doc)
        except Conflict:
            raise Conflict(f"A tenant named {name!r} exists") from None
        return doc, key

    async def list(self) -> list[Doc]:
        return await self.tenants.find({}, _SHOWN, sort=[("name", 1)])

    async def get(self, name: str) -> Doc:
        doc = await self.tenants.find_one({"name": name}) if NAME.fullmatch(name) else None
        if doc is None:
            raise NotFound("Tenant not found")
        return doc

    async def set_status(self, tenant_id: ObjectId, status: str, *, unless: str | None = None) -> bool:
        query: Doc = {"_id": tenant_id} if unless is None else {"_id": tenant_id, "status": {"$ne": unless}}
        changed = await self.tenants.update_if(query, {"$set": {"status": status}})
        self.forget(tenant_id)
        return changed

    async def rotate(self, name: str) -> str:
        doc = await self.get(name)
        key = new_key()
        if not await self.tenants.update_if({"_id": doc["_id"], "hash": doc["hash"]}, {"$set": {"hash": digest(key)}}):
            raise Conflict("The tenant's key changed meanwhile; try again")
        self.forget(doc["_id"], doc["hash"])
        return key

    async def remove(self, doc: Doc) -> None:
        await self.tenants.delete({"_id": doc["_id"]})
        self.forget(doc["_id"], doc.get("hash"))

    def forget(self, tenant_id: ObjectId, key_hash: str | None = None) -> None:
        self._by_id.drop(str(tenant_id))
        if key_hash is not None:
            self._by_hash.drop(key_hash)
        self._by_hash.drop_where(lambda doc: doc["_id"] == tenant_id)

    async def by_key(self, key: str) -> Doc | None:
        """The tenant of a key (None: unknown, rotated or deleted)."""
        key_hash = digest(key)
        doc = self._by_hash.get(key_hash)
        if doc is None:
            doc = await self.tenants.find_one({"hash": key_hash})
            if doc is None:
                return None
            self._by_hash.put(key_hash, doc)
        return doc

    async def by_id(self, tenant_id: str) -> Doc | None:
        """The tenant a credential names (None: deleted or never existed)."""
        doc = self._by_id.get(tenant_id)
        if doc is None:
            if not ObjectId.is_valid(tenant_id) or len(tenant_id) != 24:
                return None
            doc = await self.tenants.find_one({"_id": ObjectId(tenant_id)})
            if doc is None:
                return None
            self._by_id.put(tenant_id, doc)
        return doc
