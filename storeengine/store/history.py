"""Versions and restore for stores with "x-history": true (API.md 10): the feed kept for ever."""

from __future__ import annotations

from bson import ObjectId

from storeengine.core.documents import split
from storeengine.core.errors import BadRequest, Invalid, NotFound
from storeengine.core.jsonio import to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import StoreSchema
from storeengine.store.service import EntityService

MAX_VERSIONS = 1000  # the largest and default page of `_versions` (API.md 10)


async def versions(service: EntityService, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                   *, limit: int = MAX_VERSIONS, after: str | None = None) -> tuple[list[Doc], str | None]:
    """One page of versions, oldest first, after the version `after` (API.md 10), and the version
    the next page starts after (None: no more). Readable by whoever may read the entity now, or,
    once deleted, by whoever could read it when it was deleted.

    A delete's version is that of the entity it removed, so a version names at most a write and
    the delete right after it: `after` means after both, and a page never ends between them (with
    `limit=1` such a page holds the two)."""
    await _last_readable(service, principal, store, entity_id)
    assert entity_id is not None
    start = 0
    if after is not None:
        marks = await service.feed.history(store, entity_id, version=after.strip('"'))
        if not marks:
            raise BadRequest("after: not a version of this entity")
        start = marks[-1]["seq"]
    records = await service.feed.history(store, entity_id, after=start, limit=limit + 2)
    page, more = records[:limit], len(records) > limit
    if more and page[-1]["version"] == records[limit]["version"]:  # a write, then the delete that removed it
        page = page[:-1] if len(page) > 1 else records[:2]
        more = len(records) > len(page)
    shown = [{"version": r["version"], "op": r["op"], "at": r["at"], "by": r["by"],
              "entity": acl.visible(principal, store, r["entity"])}
             for r in page]
    return shown, page[-1]["version"] if more else None


async def restore(service: EntityService, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                  body: Doc) -> tuple[Doc, bool]:
    """Bring back a version's body: an update of a living entity, or the same _id re-created
    for a deleted one. Returns (entity, created)."""
    wanted = body.get("version")
    if not isinstance(wanted, str) or set(body) != {"version"}:
        raise Invalid(fields={"version": "is required (an ETag from _versions)", **{
            k: "is not allowed" for k in body if k != "version"}})
    last = await _last_readable(service, principal, store, entity_id)
    if last is None:
        raise NotFound("Unknown version")
    assert entity_id is not None
    matches = [r for r in await service.feed.history(store, entity_id, version=wanted.strip('"'))
               if r["op"] != "delete"]
    if not matches:
        raise NotFound("Unknown version")
    _, fields = split(matches[-1]["entity"])
    content = to_json_form(fields)
    if last["op"] != "delete":
        return await service.put(principal, store, entity_id, content), False
    return await service.recreate(principal, store, last["entity"], content), True


async def _last_readable(service: EntityService, principal: Principal, store: StoreSchema,
                         entity_id: ObjectId | None) -> Doc | None:
    """The entity's last change, once it is known that the caller may read its history (else 404)."""
    if entity_id is None or not store.history:
        raise NotFound("Entity not found" if store.history else f"{store.name} keeps no history")
    found = await service.feed.history(store, entity_id, last=True)
    last = found[-1] if found else None
    try:
        await service.get(principal, store, entity_id)
    except NotFound:
        if last is None or last["op"] != "delete" or not acl.can(principal, store.acl["read"], last["entity"]):
            raise
    return last  # None: readable, but nothing of it is in the history (kept since before the store kept one)
