"""References at work (API.md section 13): checked ids on writes, `expand` on reads.

Both ask storage only `find({"_id": {"$in": ids}} AND the caller's read filter)`: a write costs
one query per reference property it sets, an expansion one query per path and level for a whole
page, never one per id. Access rules are inside the query, so an entity the caller may not read
is exactly like a missing one (no existence leak), and an expanded entity is what the caller's
own GET would return (the same filter, the same hidden properties left out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

from bson import ObjectId
from orjson import Fragment

from storeengine.core.errors import Invalid, NotFound
from storeengine.core.jsonio import dumps
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.expand import Expansion, Node
from storeengine.model.references import ids_of
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.api import StorageAPI
from storeengine.store.encoded import Column, EncodedReads
from storeengine.store.expanded import EXPANDED, array, closed, members

T = TypeVar("T")


class References:
    def __init__(self, registry: Registry, storage: StorageAPI) -> None:
        self.registry = registry
        self.storage = storage

    # --- writes --------------------------------------------------------------------------------

    async def check(self, principal: Principal, store: StoreSchema, before: Doc | None, after: Doc,
                    implicit: Iterable[str] = ()) -> None:
        """400 with `fields` unless every id `after` adds to a reference property (stored form,
        ids already held by `before` are not asked again) is an entity the writer may read; `owner`
        and `group` too where the write sets them (`implicit`: never the defaults a create gets).
        One query per referenced store (so at most one per reference property), ids batched."""
        asks: dict[str, dict[str, list[ObjectId]]] = {}  # target store -> property -> its new ids
        for ref in [*store.declared_references, *(store.references[p] for p in implicit)]:
            held = set(_ids(before.get(ref.prop))) if before is not None else set()
            if new := [i for i in dict.fromkeys(_ids(after.get(ref.prop))) if i not in held]:
                asks.setdefault(ref.target, {})[ref.prop] = new
        if not asks:
            return
        answers = await _each(self._refusals(principal, target, props) for target, props in asks.items())
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
            doc[EXPANDED] = {}  # the server's member: one stored under that name is not part of it
        await _each(self._node(principal, page, node) for node in tree.values())

    async def _node(self, principal: Principal, page: list[Doc], node: Node) -> None:
        found = await self._entities(principal, node, _wanted(doc.get(node.ref.prop) for doc in page))
        _attach(page, node.ref.prop, {key: Fragment(entity) for key, entity in found.items()})

    async def expand_encoded(self, principal: Principal, rows: list[bytes], columns: Mapping[str, Column],
                             tree: Expansion) -> bytes:
        """`expand` on a page that is JSON already (each entity a JSON object without its closing
        brace and without a member `_expand` of its own, as bytes), given the column of each
        reference the tree follows: the page as one JSON array, `_expand` spliced into each
        object as text (expanded.py), never decoded."""
        if not rows:
            return b"[]"
        return array(rows, *await self._members(principal, columns, tree))

    async def _members(self, principal: Principal, columns: Mapping[str, Column],
                       tree: Expansion) -> tuple[list[Any], dict[Any, bytes]]:
        props = list(tree)
        found = await _each(self._entities(principal, tree[p], _wanted(columns[p][1].values())) for p in props)
        return members(props, [columns[p] for p in props], found)

    async def _entities(self, principal: Principal, node: Node, wanted: Mapping[bytes, ObjectId]) -> dict[bytes, bytes]:
        """The entities of `node.target` among `wanted` the caller may read, by their id's bytes:
        each as the caller's own GET would answer it (JSON), expanded further along `node.children`.
        One query, answered as JSON where the backend can (store/encoded.py), else decoded."""
        if not wanted:
            return {}
        target, ids = node.target, list(wanted.values())
        coll = self.storage.collection(target.name)
        drop = tuple(sorted(acl.unreadable(principal, target)))
        if isinstance(coll, EncodedReads) and coll.can_drop(drop) \
                and not (target.read_rules and not principal.is_admin):
            # No property rule to apply entity by entity: the entities go out as stored.
            deeper = list(node.children)
            rows, columns, _ = await coll.find_answer(_where(principal, target, ids), None, 0, len(ids),
                                                      [*deeper, "_id"], (*drop, EXPANDED) if deeper else drop,
                                                      opened=bool(deeper))
            codes, values = columns[-1]
            if deeper:
                named = dict(zip(deeper, columns, strict=False))
                rows = closed(rows, *await self._members(principal, named, node.children))
            return {values[code].binary: row for code, row in zip(codes, rows, strict=True)
                    if type(values[code]) is ObjectId}
        docs = await self._find(principal, target, ids, _hide(principal, target))
        # Property rules per entity (API.md 15) before the next level: a property hidden on an
        # entity is neither shown nor followed.
        seen = [acl.visible(principal, target, doc) for doc in docs]
        await self.expand(principal, seen, node.children)
        # Each entity encoded once, however many entities of the page refer to it.
        return {doc["_id"].binary: dumps(doc) for doc in seen if type(doc["_id"]) is ObjectId}

    async def _find(self, principal: Principal, store: StoreSchema, ids: list[ObjectId],
                    projection: Mapping[str, int] | None) -> list[Doc]:
        return await self.storage.collection(store.name).find(_where(principal, store, ids), projection,
                                                              limit=len(ids))


async def _each(calls: Iterable[Awaitable[T]]) -> list[T]:
    """`asyncio.gather`, but one call is awaited here: gather would make it a task, costing a turn
    of the event loop (a write's check of references to one store, a page's one `expand` path)."""
    pending = list(calls)
    if len(pending) == 1:
        return [await pending[0]]
    return list(await asyncio.gather(*pending))


def _where(principal: Principal, store: StoreSchema, ids: list[ObjectId]) -> dict[str, Any]:
    match: dict[str, Any] = {"_id": ids[0] if len(ids) == 1 else {"$in": ids}}  # one id: the cheapest form
    return acl.restrict(match, principal, store.acl["read"])


# Ids keyed by their bytes: ObjectId's own __hash__ and __eq__ are Python calls, and a page of
# 1,000 entities with 100 distinct parents looks each id up three times (8x faster this way).

def _wanted(values: Iterable[Any]) -> dict[bytes, ObjectId]:
    """The distinct ids among the values of a reference (ids, lists of ids), in order."""
    wanted: dict[bytes, ObjectId] = {}
    for value in values:
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
