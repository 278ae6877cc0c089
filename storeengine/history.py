"""Versions and restore for stores with "x-history": true (API.md 10): the feed kept for ever."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from storeengine import acl
from storeengine.acl import Principal
from storeengine.entities import Doc, next_update_time, split
from storeengine.errors import Forbidden, Invalid, NotFound
from storeengine.jsonio import to_json_form
from storeengine.schemas import StoreSchema
from storeengine.service import EntityService


async def versions(service: EntityService, principal: Principal, name: str,
                   entity_id: ObjectId | None) -> list[Doc]:
    """Every version, oldest first: readable by whoever may read the entity now, or, once
    deleted, by whoever could read it when it was deleted."""
    store = service.registry.get(name)
    records = await _records(service, principal, store, entity_id)
    return [{"version": r["version"], "op": r["op"], "at": r["at"], "by": r["by"], "entity": r["entity"]}
            for r in records]


async def restore(service: EntityService, principal: Principal, name: str, entity_id: ObjectId | None,
                  body: Doc) -> tuple[Doc, bool]:
    """Bring back a version's body: an update of a living entity, or the same _id re-created
    for a deleted one. Returns (entity, created)."""
    store = service.registry.get(name)
    wanted = body.get("version")
    if not isinstance(wanted, str) or set(body) != {"version"}:
        raise Invalid(fields={"version": "is required (an ETag from _versions)", **{
            k: "is not allowed" for k in body if k != "version"}})
    records = await _records(service, principal, store, entity_id)
    matches = [r for r in records if r["version"] == wanted.strip('"') and r["op"] != "delete"]
    if not matches:
        raise NotFound("Unknown version")
    _, fields = split(matches[-1]["entity"])
    content = to_json_form(fields)
    if records[-1]["op"] != "delete":
        return await service.put(principal, name, entity_id, content), False
    return await _recreate(service, principal, store, records[-1]["entity"], content), True


async def _records(service: EntityService, principal: Principal, store: StoreSchema,
                   entity_id: ObjectId | None) -> list[Doc]:
    if entity_id is None or not store.history:
        raise NotFound("Entity not found" if store.history else f"{store.name} keeps no history")
    records = await service.feed.history(store, entity_id)
    try:
        await service.get(principal, store.name, entity_id)
    except NotFound:
        last = records[-1] if records else None
        if last is None or last["op"] != "delete" or not acl.can(principal, store.acl["read"], last["entity"]):
            raise
    return records


async def _recreate(service: EntityService, principal: Principal, store: StoreSchema, deleted: Doc,
                    content: dict[str, Any]) -> Doc:
    """The same _id, owner and access fields as when it was deleted, under the create rules."""
    store.validate(content)
    system = {k: deleted.get(k) for k in ("owner", "group", "access", "branch", "createdAt")}
    system["updatedAt"] = next_update_time(deleted["updatedAt"])
    if not acl.can(principal, store.acl["create"], system):
        raise Forbidden(f"You may not create in {store.name}")
    if not principal.is_admin and (denied := store.admin_only & content.keys()):
        raise Forbidden(f"Only admins may set: {', '.join(sorted(denied))}")
    doc = {"_id": deleted["_id"], **store.to_storage(content), **system}
    async with service.feed.writing(principal, store, "create", None) as change:
        await service.storage.collection(store.name).insert(doc)
        change.commit(doc)
    await service._after_write(principal, store, "create", None, doc)  # hooks and events, as a create
    return doc
