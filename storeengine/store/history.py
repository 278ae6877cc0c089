"""Versions and restore for stores with "x-history": true (API.md 10): the feed kept for ever."""

from __future__ import annotations

from bson import ObjectId

from storeengine.core.documents import split
from storeengine.core.errors import Invalid, NotFound
from storeengine.core.jsonio import to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import StoreSchema
from storeengine.store.service import EntityService


async def versions(service: EntityService, principal: Principal, store: StoreSchema,
                   entity_id: ObjectId | None) -> list[Doc]:
    """Every version, oldest first: readable by whoever may read the entity now, or, once
    deleted, by whoever could read it when it was deleted."""
    records = await _records(service, principal, store, entity_id)
    return [{"version": r["version"], "op": r["op"], "at": r["at"], "by": r["by"],
             "entity": acl.visible(principal, store, r["entity"])} for r in records]


async def restore(service: EntityService, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                  body: Doc) -> tuple[Doc, bool]:
    """Bring back a version's body: an update of a living entity, or the same _id re-created
    for a deleted one. Returns (entity, created)."""
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
        return await service.put(principal, store, entity_id, content), False
    return await service.recreate(principal, store, records[-1]["entity"], content), True


async def _records(service: EntityService, principal: Principal, store: StoreSchema,
                   entity_id: ObjectId | None) -> list[Doc]:
    if entity_id is None or not store.history:
        raise NotFound("Entity not found" if store.history else f"{store.name} keeps no history")
    records = await service.feed.history(store, entity_id)
    try:
        await service.get(principal, store, entity_id)
    except NotFound:
        last = records[-1] if records else None
        if last is None or last["op"] != "delete" or not acl.can(principal, store.acl["read"], last["entity"]):
            raise
    return records
