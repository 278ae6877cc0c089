"""References at work (API.md section 13): checked ids on writes, `expand` on reads.

Both ask storage only `find({"_id": {"$in": ids}} AND the caller's read filter)`: a write costs
one query per reference property it sets, an expansion one query per path and level for a whole
page, never one per id. Access rules are inside the query, so an entity the caller may not read
is exactly like a missing one (no existence leak), and an expanded entity is what the caller's
own GET would return (the same filter, the same hidden properties left out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId
from orjson import Fragment

from storeengine.core.errors import Invalid, NotFound
from storeengine.core.jsonio import encoded
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.expand import Expansion, Node
from storeengine.model.references import ids_of
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.api import StorageAPI

EXPANDED = "_expand"


class References:
    def __init__(self, registry: Registry, storage: StorageAPI) -> None:
        self.registry = registry
        self.storage = storage

    # --- writes --------------------------------------------------------------------------------

    async def check(self, principal: Principal, store: StoreSchema, before: Doc | None, after: Doc) -> None:
        """400 with `fields` unless every id `after` adds to a reference property (stored form,
        ids already held by `before` are not asked again) is an entity the writer may read.
        One query per referenced store (so at most one per reference property), ids batched."""
        asks: dict[str, dict[str, list[ObjectId]]] = {}  # target store -> property -> its new ids
        for ref in store.declared_references:
            held = set(_ids(before.get(ref.prop))) if before is not None else set()
            if new := [i for i in dict.fromkeys(_ids(after.get(ref.prop))) if i not in held]:
                asks.setdefault(ref.target, {})[ref.prop] = new
        if not asks:
            return
        answers = await asyncio.gather(*(self._refusals(principal, target, props) for target, props in asks.items()))
        if fields := {prop: message for answer in answers for prop, message in answer.items()}:
            raise Invalid(fields=dict(sorted(fields.items())))

    async def _refusals(self, principal: Principal, target_name: str,
                        props: dict[str, list[ObjectId]]) -> dict[str, str]:
        try:
            target = self.registry.get(target_name)
        except NotFound:
            return dict.fromkeys(props, f"refers to the store {target_name}, which does not exist")
        wanted = list(dict.fromkeys(i for ids in props.values() for i in ids))
        found = {row["_id"] for row in await self._find(principal, target, wanted, {"_id": 1})}
        # One message for missing and unreadable alike: the answer must not tell them apart.
        message = f"must be the id of a {target_name} entity you may read"
        return {prop: message for prop, ids in props.items() if not found.issuperset(ids)}

    # --- reads ---------------------------------------------------------------------------------

    async def expand(self, principal: Principal, docs: Iterable[Doc | None], tree: Expansion) -> None:
        """Put `_expand` on each entity of a page, one query per node of the tree (per level); the
        expanded entities are ready JSON (`orjson.Fragment`), for the answer only."""
        page = [d for d in docs if d is not None]
        if not tree or not page:
            return
        for doc in page:
            doc.setdefault(EXPANDED, {})
        await asyncio.gather(*(self._node(principal, page, node) for node in tree.values()))

    async def _node(self, principal: Principal, page: list[Doc], node: Node) -> None:
        found: dict[bytes, Fragment] = {}
        if wanted := _wanted(page, node.ref.prop):
            rows = await self._find(principal, node.target, list(wanted.values()), _hide(principal, node.target))
            # Property rules per entity (API.md 15) before the next level: a property hidden on an
            # entity is neither shown nor followed.
            seen = [acl.visible(principal, node.target, row) for row in rows]
            await self.expand(principal, seen, node.children)
            # Each entity encoded once, however many entities of the page refer to it.
            found = {row["_id"].binary: encoded(row) for row in seen}
        _attach(page, node.ref.prop, found)

    async def _find(self, principal: Principal, store: StoreSchema, ids: list[ObjectId],
                    projection: Mapping[str, int] | None) -> list[Doc]:
        match: dict[str, Any] = {"_id": ids[0] if len(ids) == 1 else {"$in": ids}}  # one id: the cheapest form
        where = acl.restrict(match, principal, store.acl["read"])
        return await self.storage.collection(store.name).find(where, projection, limit=len(ids))


# Ids keyed by their bytes: ObjectId's own __hash__ and __eq__ are Python calls, and a page of
# 1,000 entities with 100 distinct parents looks each id up three times (8x faster this way).

def _wanted(page: list[Doc], prop: str) -> dict[bytes, ObjectId]:
    """The distinct ids the page's `prop` holds, in order."""
    wanted: dict[bytes, ObjectId] = {}
    for doc in page:
        value = doc.get(prop)
        if type(value) is ObjectId:
            wanted.setdefault(value.binary, value)
        elif isinstance(value, list):
            for i in value:
                if type(i) is ObjectId:
                    wanted.setdefault(i.binary, i)
    return wanted


def _attach(page: list[Doc], prop: str, found: Mapping[bytes, Fragment]) -> None:
    """`_expand.<prop>` of each entity: the found entity, or for an array the found ones in order."""
    for doc in page:
        value = doc.get(prop)
        if type(value) is ObjectId:
            if (one := found.get(value.binary)) is not None:
                doc[EXPANDED][prop] = one
        elif isinstance(value, list):
            shown = (found.get(i.binary) for i in value if type(i) is ObjectId)
            doc[EXPANDED][prop] = [f for f in shown if f is not None]


def _ids(value: object) -> list[ObjectId]:
    """The ObjectIds a reference field holds (anything else, say data older than its x-ref, is no reference)."""
    return [v for v in ids_of(value) if isinstance(v, ObjectId)]


def _hide(principal: Principal, store: StoreSchema) -> dict[str, int] | None:
    """What the caller may never read of the store, left out of the query."""
    unreadable = acl.unreadable(principal, store)
    return {f: 0 for f in unreadable} if unreadable else None
