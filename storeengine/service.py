"""The store operations: validate + access rules + storage + publish. No HTTP, no Socket.IO."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from bson import ObjectId

from storeengine import acl
from storeengine.acl import Principal
from storeengine.entities import (
    ACCESS_FIELDS, Doc, forbidden_fields, id_list, merge_patch, next_update_time, optional_id, reject_fields, split,
    version,
)
from storeengine.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed, StoreError
from storeengine.feed import Feed
from storeengine.formats import utcnow
from storeengine.jsonio import to_json_form
from storeengine.query import ListQuery
from storeengine.schemas import SYSTEM_FIELDS, Registry, StoreSchema
from storeengine.storage import ENGINE_INDEXES, Storage

log = logging.getLogger("storeengine.service")

MAX_RETRIES = 20
_NOT_IN_CREATE = ("_id", "owner", "createdAt", "updatedAt")


class EventSink(Protocol):
    def publish(self, store: StoreSchema, op: str, entity: Mapping[str, Any]) -> None: ...


class NoEvents:
    def publish(self, store: StoreSchema, op: str, entity: Mapping[str, Any]) -> None:
        return None


Hasher = Callable[[str], Awaitable[str]]
# Called after each successful write with (principal, store, before, after); auth uses it
# to end credentials when a password changes or a user is deactivated or deleted.
WriteHook = Callable[[Principal, StoreSchema, "Doc | None", "Doc | None"], Awaitable[None]]


class EntityService:
    def __init__(self, registry: Registry, storage: Storage, hasher: Hasher,
                 events: EventSink | None = None, feed: Feed | None = None) -> None:
        self.registry = registry
        self.feed = feed or Feed(storage, retention_seconds=1, enabled=False)
        self.storage = storage
        self.hasher = hasher
        self.events: EventSink = events or NoEvents()
        self.write_hooks: list[WriteHook] = []

    # --- reads ---------------------------------------------------------------------------

    async def get(self, principal: Principal, name: str, entity_id: ObjectId | None) -> Doc:
        store = self.registry.get(name)
        return await self._readable(principal, store, entity_id, projection=_hide(store))

    async def list(self, principal: Principal, name: str, query: ListQuery) -> list[Doc] | Doc:
        store = self.registry.get(name)
        coll = self.storage.collection(store.name)
        where = acl.restrict(query.filter, principal, store.acl["read"])
        projection = query.projection or _hide(store)
        if not query.meta:
            return await coll.find(where, projection, query.sort, query.offset, query.limit)
        reverse = [(k, -d) for k, d in query.sort]
        total, first, last = await asyncio.gather(
            coll.count(where), coll.find_one(where, projection, query.sort), coll.find_one(where, projection, reverse),
        )
        return {"total": total, "first": first, "last": last}

    # --- writes --------------------------------------------------------------------------

    async def create(self, principal: Principal, name: str, body: Doc) -> Doc:
        store = self.registry.get(name)
        payload = {k: v for k, v in body.items() if k not in ACCESS_FIELDS}
        # Every failing field in one 400: server fields, access fields and the schema.
        problems = forbidden_fields(body, _NOT_IN_CREATE, "is set by the server")
        system: Doc = {}
        for check in (lambda: system.update(self._new_system_fields(principal, body)),
                      lambda: store.validate({k: v for k, v in payload.items() if k not in problems})):
            try:
                check()
            except Invalid as exc:
                problems.update(exc.fields or {})
        if problems:
            raise Invalid(fields=problems)
        if not acl.can(principal, store.acl["create"], system):
            raise Forbidden(f"You may not create in {store.name}")
        if not principal.is_admin and (denied := store.admin_only & payload.keys()):
            raise Forbidden(f"Only admins may set: {', '.join(sorted(denied))}")
        stored = await self._hash_write_only(store, store.to_storage(payload), payload)
        doc = {"_id": system.pop("_id"), **stored, **system}
        async with self.feed.writing(principal, store, "create", None) as change:
            await self.storage.collection(store.name).insert(doc)
            change.commit(doc)
        await self._after_write(principal, store, "create", None, doc)
        return _public(store, doc)

    async def patch(self, principal: Principal, name: str, entity_id: ObjectId | None, patch: Doc,
                    if_match: list[str] | None = None) -> Doc:
        store = self.registry.get(name)
        reject_fields(patch, SYSTEM_FIELDS, "is a system field")

        def build(current_body: Doc) -> Doc:
            return merge_patch(current_body, patch)

        return await self._replace_body(principal, store, entity_id, patch, build, if_match)

    async def put(self, principal: Principal, name: str, entity_id: ObjectId | None, body: Doc,
                  if_match: list[str] | None = None) -> Doc:
        store = self.registry.get(name)
        reject_fields(body, SYSTEM_FIELDS, "is a system field")

        def build(current_body: Doc) -> Doc:
            # Write-only values (hashes) survive a PUT that leaves them out: they cannot be read back.
            kept = {k: current_body[k] for k in store.write_only if k in current_body and k not in body}
            return {**body, **kept}

        return await self._replace_body(principal, store, entity_id, body, build, if_match)

    async def set_acl(self, principal: Principal, name: str, entity_id: ObjectId | None, body: Doc,
                      if_match: list[str] | None = None) -> Doc:
        store = self.registry.get(name)
        allowed = (*ACCESS_FIELDS, "owner")
        if unknown := {k: "cannot be set here" for k in body if k not in allowed}:
            raise Invalid(fields=unknown)

        async def build(current: Doc) -> Doc:
            # Checked on the entity found, so a caller who may not read it still gets 404.
            if not principal.is_admin and current.get("owner") != principal.user_id:
                raise Forbidden("Only the owner or an admin may change access")
            if "owner" in body and not principal.is_admin:
                raise Forbidden("Only admins may change the owner")
            return {**current, **self._access_changes(principal, body)}

        return await self._modify(principal, store, entity_id, build, if_match, rule_op=None)

    async def delete(self, principal: Principal, name: str, entity_id: ObjectId | None,
                     if_match: list[str] | None = None) -> ObjectId:
        store = self.registry.get(name)
        coll = self.storage.collection(store.name)
        for _ in range(MAX_RETRIES):
            current = await self._readable(principal, store, entity_id)
            self._check(principal, store, "delete", current, if_match)
            async with self.feed.writing(principal, store, "delete", current) as change:
                if await coll.delete({"_id": current["_id"], "updatedAt": current["updatedAt"]}):
                    change.commit(None)
            if change.done:
                await self._after_write(principal, store, "delete", current, None)
                return current["_id"]
            if if_match is not None:
                raise PreconditionFailed("The entity changed")
        raise Conflict("The entity keeps changing; try again")

    async def ensure_indexes(self, store: StoreSchema) -> None:
        coll = self.storage.collection(store.name)
        for keys in ENGINE_INDEXES:
            await coll.ensure_index(keys)
        for spec in store.indexes:
            await coll.ensure_index(spec.keys, unique=spec.unique)

    # --- internals -----------------------------------------------------------------------

    async def _readable(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                        projection: dict[str, int] | None = None) -> Doc:
        if entity_id is None:
            raise NotFound("Entity not found")
        where = acl.restrict({"_id": entity_id}, principal, store.acl["read"])
        doc = await self.storage.collection(store.name).find_one(where, projection)
        if doc is None:
            raise NotFound("Entity not found")
        return doc

    @staticmethod
    def _check(principal: Principal, store: StoreSchema, op: str | None, current: Doc,
               if_match: list[str] | None) -> None:
        """403 if the rules of `op` refuse the caller, then 412 if If-Match names another version."""
        if op is not None and not acl.can(principal, store.acl[op], current):
            raise Forbidden(f"You may not {op} this entity")
        if if_match is not None and "*" not in if_match and version(current) not in if_match:
            raise PreconditionFailed("If-Match does not match the entity's ETag")

    async def _replace_body(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                            given: Doc, build: Callable[[Doc], Doc], if_match: list[str] | None) -> Doc:
        hashes: dict[str, str] = {}

        async def apply(current: Doc) -> Doc:
            system, body = split(current)
            old = to_json_form(body)
            new = build(old)
            if not principal.is_admin:
                if denied := sorted(f for f in store.admin_only if new.get(f) != old.get(f)):
                    raise Forbidden(f"Only admins may change: {', '.join(denied)}")
            store.validate(new)
            fresh = {k: v for k, v in given.items() if k in store.write_only and v is not None}
            for key, value in fresh.items():
                if key not in hashes:
                    hashes[key] = await self.hasher(value)
            return {**system, **store.to_storage(new), **hashes}

        return await self._modify(principal, store, entity_id, apply, if_match, rule_op="update")

    async def _modify(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                      build: Callable[[Doc], Awaitable[Doc]], if_match: list[str] | None,
                      rule_op: str | None) -> Doc:
        """Read, build the new document, and compare-and-swap on `updatedAt`; retry on a race."""
        coll = self.storage.collection(store.name)
        for _ in range(MAX_RETRIES):
            current = await self._readable(principal, store, entity_id)
            self._check(principal, store, rule_op, current, if_match)
            new = await build(current)
            new["updatedAt"] = next_update_time(current["updatedAt"])
            async with self.feed.writing(principal, store, "update", current) as change:
                if await coll.update_if({"_id": current["_id"], "updatedAt": current["updatedAt"]},
                                        _diff(current, new)):
                    change.commit(new)
            if change.done:
                await self._after_write(principal, store, "update", current, new)
                return _public(store, new)
            if if_match is not None:
                raise PreconditionFailed("The entity changed")
        raise Conflict("The entity keeps changing; try again")

    def _new_system_fields(self, principal: Principal, body: Doc) -> Doc:
        changes = self._access_changes(principal, body)
        now = utcnow()
        return {
            "_id": ObjectId(), "owner": principal.user_id,
            "group": changes.get("group", principal.primary_group),
            "access": changes.get("access", []), "branch": changes.get("branch", []),
            "createdAt": now, "updatedAt": now,
        }

    @staticmethod
    def _access_changes(principal: Principal, body: Doc) -> Doc:
        """Validated `group` / `access` / `branch` / `owner` values from a body."""
        changes: Doc = {}
        problems: dict[str, str] = {}
        parsers = {"group": optional_id, "access": id_list, "branch": id_list, "owner": optional_id}
        for name, parse in parsers.items():
            if name in body:
                try:
                    changes[name] = parse(body[name], name)
                except Invalid as exc:
                    problems.update(exc.fields or {})
        if problems:
            raise Invalid(fields=problems)
        group = changes.get("group")
        if group is not None and not principal.is_admin and group not in principal.groups:
            raise Forbidden("group must be one of your own groups")
        return changes

    async def _hash_write_only(self, store: StoreSchema, stored: Doc, given: Doc) -> Doc:
        for key in store.write_only & given.keys():
            stored[key] = await self.hasher(given[key])
        return stored

    async def _after_write(self, principal: Principal, store: StoreSchema, op: str,
                           before: Doc | None, after: Doc | None) -> None:
        for hook in self.write_hooks:
            try:
                await hook(principal, store, before, after)
            except StoreError:
                raise
            except Exception:  # a hook must never turn a committed write into a 500
                log.exception("write hook failed")
        entity = after if after is not None else before
        assert entity is not None
        self.events.publish(store, op, _public(store, entity))


def _diff(current: Doc, new: Doc) -> Doc:
    """$set / $unset for the public fields; internal `_` fields (auth state) are left alone,
    so a concurrent credential revocation is never overwritten by an entity write."""
    gone = {k: "" for k in current if k not in new and not k.startswith("_")}
    update: Doc = {"$set": {k: v for k, v in new.items() if not k.startswith("_")}}
    if gone:
        update["$unset"] = gone
    return update


def _hide(store: StoreSchema) -> dict[str, int] | None:
    return {f: 0 for f in store.hidden} if store.hidden else None


def _public(store: StoreSchema, doc: Doc) -> Doc:
    if not store.hidden:
        return doc
    return {k: v for k, v in doc.items() if k not in store.hidden}
