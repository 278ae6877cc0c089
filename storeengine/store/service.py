"""The store operations: validate + access rules + storage + publish. No HTTP, no Socket.IO.

Callers pass the resolved `StoreSchema` (the HTTP layer looks the store up once). Every access
decision is asked of `acl`; a write is read -> check -> change -> compare-and-swap, where the
change is a pure function of the stored entity (see `_modify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bson import ObjectId

from storeengine.core.documents import (
    ACCESS_FIELDS,
    SYSTEM_FIELDS,
    forbidden_fields,
    id_list,
    merge_patch,
    next_update_time,
    optional_id,
    reject_fields,
    split,
    version,
)
from storeengine.core.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound, PreconditionFailed, StoreError
from storeengine.core.formats import utcnow
from storeengine.core.jsonio import to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.aggregate import Aggregation
from storeengine.model.keyset import Keyset, pageable
from storeengine.model.query import ListQuery
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.api import StorageAPI
from storeengine.store.carried import public
from storeengine.store.encoded import Column, EncodedReads
from storeengine.store.feed import Feed
from storeengine.store.indexes import Indexes
from storeengine.store.references import References
from storeengine.store.serial import KeyedLocks
from storeengine.store.writes import Writes

log = logging.getLogger(__name__)

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
# A write's change: the stored entity -> the new stored entity. Pure (no I/O, no await), so
# the compare-and-swap loop can run it again on a fresher copy after a race.
Change = Callable[[Doc], Doc]
# Entered around an update's or delete's compare-and-swap with (principal, store, before, after):
# may refuse the write (a StoreError) or hold a lock until it is done (auth: the last admin).
WriteGuard = Callable[[Principal, StoreSchema, Doc, "Doc | None"], contextlib.AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Page:
    """A list answer: the entities, and where a later read may resume (the change feed's cursor)."""

    items: list[Doc]
    cursor: str | None = None
    next_after: str | None = None  # a full page's keyset token (X-Next-After)
    # The entities as the answer's JSON already (`items` then empty; opened if asked), and the
    # column of values of each field asked for (`expand` follows them: list_entities' `fields`).
    encoded: list[bytes] | None = None
    columns: dict[str, Column] | None = None

    def to_json(self) -> list[Doc]:
        return self.items


@dataclass(frozen=True)
class Summary:
    """A `meta=true` answer."""

    total: int
    first: Doc | None
    last: Doc | None
    cursor: str | None = None

    def to_json(self) -> Doc:
        return {"total": self.total, "first": self.first, "last": self.last}


class EntityService:
    def __init__(self, registry: Registry, storage: StorageAPI, hasher: Hasher,
                 events: EventSink | None = None, feed: Feed | None = None, keyset: Keyset | None = None) -> None:
        self.registry = registry
        self.indexes = Indexes(registry, storage)  # a tenant's names its database (app.py)
        self._serial = KeyedLocks()
        self.keyset = keyset or Keyset(secrets.token_urlsafe(32))
        self.feed = feed or Feed(storage, retention_seconds=1, enabled=False)
        self.writes = Writes(self.feed)
        self.storage = storage
        self.hasher = hasher
        self.events: EventSink = events or NoEvents()
        self.write_hooks: list[WriteHook] = []
        self.references = References(registry, storage)  # checked ids on writes, `expand` on reads
        self.write_guards: list[WriteGuard] = []

    # --- reads ---------------------------------------------------------------------------

    async def get(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None) -> Doc:
        return acl.visible(principal, store, await self._readable(principal, store, entity_id,
                                                                  projection=_hide(principal, store)))

    async def list_entities(self, principal: Principal, store: StoreSchema, query: ListQuery, *,
                            encoded: bool = False, fields: Sequence[str] = (), opened: bool = False,
                            replaced: Sequence[str] = ()) -> Page | Summary:
        """`encoded`: the caller sends the entities as they are, so they may come as JSON bytes
        (Page.encoded) where the backend can make them, with the values of `fields` (Page.columns);
        `opened`: each without its closing brace and without the top-level members `replaced`, for
        the caller to add its own (`expand`)."""
        coll = self.storage.collection(store.name)
        if not query.meta:
            return await self._page(principal, store, query, encoded, fields, opened, replaced)
        where = acl.restrict(query.filter, principal, store.acl["read"])
        projection = query.projection or _hide(principal, store)
        at = await self.feed.list_cursor(store)  # read before the list: resuming from it leaves no gap
        reverse = [(k, -d) for k, d in query.sort]
        total, first, last = await asyncio.gather(
            coll.count(where), coll.find_one(where, projection, query.sort), coll.find_one(where, projection, reverse),
        )
        return Summary(total, _visible(principal, store, first), _visible(principal, store, last), at)

    async def aggregate(self, principal: Principal, store: StoreSchema, aggregation: Aggregation) -> list[Doc]:
        """`_aggregate`: one pipeline whose first `$match` holds the caller's read rules."""
        match = acl.restrict(aggregation.filter, principal, store.acl["read"])
        rows = await self.storage.collection(store.name).aggregate(aggregation.pipeline(match))
        return aggregation.answer(rows)

    async def _page(self, principal: Principal, store: StoreSchema, query: ListQuery, encoded: bool = False,
                    fields: Sequence[str] = (), opened: bool = False, replaced: Sequence[str] = ()) -> Page:
        """A page, resumed after a keyset token when given; a full page carries the next token."""
        keyed = pageable(store.properties, query.sort)
        where = query.filter
        if query.after is not None:
            if not keyed:
                raise BadRequest("after: this sort cannot be paged with a token (sort keys must be "
                                 "top-level fields of one scalar type)")
            after = self.keyset.resume(query.after, store.name, query.sort)
            where = {"$and": [where, after]} if where else after
        where = acl.restrict(where, principal, store.acl["read"])
        projection = query.projection or _hide(principal, store)
        added: list[str] = []
        if keyed and query.projection is not None:  # the token needs the sort keys of the last entity
            added = [k for k, _ in query.sort if k not in query.projection]
            projection = {**query.projection, **dict.fromkeys(added, 1)}
        at = await self.feed.list_cursor(store)  # read before the list: resuming from it leaves no gap
        coll = self.storage.collection(store.name)
        drop = _dropped(projection)
        if encoded and drop is not None and not (store.read_rules and not principal.is_admin) \
                and isinstance(coll, EncodedReads) and coll.can_drop([*drop, *replaced]):
            # Nothing to add to the stored entities, only top-level fields to leave out (the change
            # an entity carries, hidden values): they go out as stored.
            rows, values, last = await coll.find_answer(where, query.sort, query.offset, query.limit, fields,
                                                        (*drop, *replaced), opened)
            token = self.keyset.token(store.name, query.sort, last) if keyed and last and len(rows) == query.limit \
                else None
            return Page([], at, token, rows, dict(zip(fields, values, strict=True)))
        items = await coll.find(where, projection, query.sort, query.offset, query.limit)
        token = self.keyset.token(store.name, query.sort, items[-1]) if keyed and len(items) == query.limit else None
        if added:
            items = [{k: v for k, v in doc.items() if k not in added} for doc in items]
        if query.projection is None and projection:
            items = _left_out(items, projection)
        if store.read_rules and not principal.is_admin:
            items = [acl.visible(principal, store, doc) for doc in items]
        return Page(items, at, token)

    # --- writes --------------------------------------------------------------------------

    async def create(self, principal: Principal, store: StoreSchema, body: Doc) -> Doc:
        payload = {k: v for k, v in body.items() if k not in ACCESS_FIELDS}
        # Every failing field in one 400: server fields, access fields and the schema.
        problems = forbidden_fields(body, _NOT_IN_CREATE, "is set by the server")
        system: Doc = {}
        try:
            system = _new_system_fields(principal, body)
        except Invalid as exc:
            problems.update(exc.fields or {})
        try:
            store.validate({k: v for k, v in payload.items() if k not in problems})
        except Invalid as exc:
            problems.update(exc.fields or {})
        if problems:
            raise Invalid(fields=problems)
        acl.check_create(principal, store, system, payload)
        stored = {**store.to_storage(payload), **_hashed(store, payload, await self._hashes(store, payload))}
        doc = {"_id": system.pop("_id"), **stored, **system}
        await self.references.check(principal, store, None, doc, _implicit(body))
        await self.indexes.ready(store.name)
        await self.writes.create(principal, store, doc)
        await self._after_write(principal, store, "create", None, doc)
        return acl.visible(principal, store, doc)

    async def patch(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None, patch: Doc,
                    if_match: list[str] | None = None) -> Doc:
        reject_fields(patch, SYSTEM_FIELDS, "is a system field")
        change = functools.partial(_patched, principal, store, patch, await self._hashes(store, patch))
        return await self._modify(principal, store, entity_id, "update", change, if_match)

    async def put(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None, body: Doc,
                  if_match: list[str] | None = None) -> Doc:
        reject_fields(body, SYSTEM_FIELDS, "is a system field")
        change = functools.partial(_replaced, principal, store, body, await self._hashes(store, body))
        return await self._modify(principal, store, entity_id, "update", change, if_match)

    async def set_acl(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None, body: Doc,
                      if_match: list[str] | None = None) -> Doc:
        allowed = (*ACCESS_FIELDS, "owner")
        if unknown := {k: "cannot be set here" for k in body if k not in allowed}:
            with contextlib.suppress(Forbidden):  # every failing field in one 400, not the unknown ones only
                try:
                    _access_changes(principal, {k: v for k, v in body.items() if k in allowed})
                except Invalid as exc:
                    unknown.update(exc.fields or {})
            raise Invalid(fields=dict(sorted(unknown.items())))
        change = functools.partial(_access_set, principal, body)
        return await self._modify(principal, store, entity_id, None, change, if_match, _implicit(body))

    async def delete(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                     if_match: list[str] | None = None) -> ObjectId:
        async with self._serial.hold((store.name, entity_id)):  # one write of an entity at a time here (serial.py)
            for _ in range(MAX_RETRIES):
                current = await self._readable(principal, store, entity_id)
                _check(principal, store, "delete", current, if_match)
                async with self._guarded(principal, store, current, None):
                    done = await self.writes.delete(principal, store, current)
                if done:
                    await self._after_write(principal, store, "delete", current, None)
                    deleted: ObjectId = current["_id"]
                    return deleted
                if if_match is not None:
                    raise PreconditionFailed("The entity changed")
            raise Conflict("The entity keeps changing; try again")

    async def recreate(self, principal: Principal, store: StoreSchema, deleted: Doc, content: Doc) -> Doc:
        """Restore of a deleted entity (history): the same _id, owner and access fields as when it
        was deleted, with `content` as its body, under the create rules; its change is a create."""
        store.validate(content)
        system = {k: deleted.get(k) for k in ("owner", "group", "access", "branch", "createdAt")}
        system["updatedAt"] = next_update_time(deleted["updatedAt"])
        acl.check_create(principal, store, system, content)
        doc = {"_id": deleted["_id"], **store.to_storage(content), **system}
        await self.references.check(principal, store, None, doc)
        await self.indexes.ready(store.name)
        await self.writes.create(principal, store, doc)
        await self._after_write(principal, store, "create", None, doc)
        return acl.visible(principal, store, doc)

    async def ensure_indexes(self, store: StoreSchema) -> list[str]:
        """The store's indexes made (indexes.py); the problems of those that could not be."""
        return await self.indexes.ensure(store)

    # --- internals -----------------------------------------------------------------------

    async def _readable(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                        projection: dict[str, int] | None = None) -> Doc:
        if entity_id is None:
            raise NotFound("Entity not found")
        rules = store.acl["read"]
        if projection is None or all(v == 0 and "." not in k for k, v in projection.items()):
            # By its id alone, and the read rules checked on it here (acl.can: what the feed and the
            # events decide with): compiling the rules into the query cost a GET by id on the embedded
            # database an eighth of its CPU. A document the caller may not read is a 404 all the same.
            doc = await self.storage.collection(store.name).find_one({"_id": entity_id})
            if doc is None or not acl.can(principal, rules, doc):
                raise NotFound("Entity not found")
            return {k: v for k, v in doc.items() if k not in projection} if projection else doc
        doc = await self.storage.collection(store.name).find_one(acl.restrict({"_id": entity_id}, principal, rules),
                                                                 projection)
        if doc is None:
            raise NotFound("Entity not found")
        return doc

    async def _modify(self, principal: Principal, store: StoreSchema, entity_id: ObjectId | None,
                      rule_op: str | None, change: Change, if_match: list[str] | None,
                      implicit: Sequence[str] = ()) -> Doc:
        """Read, check, change, and compare-and-swap (on `updatedAt` and the change the entity
        carries, see feed.py); on a race, again from the read."""
        async with self._serial.hold((store.name, entity_id)):  # one write of an entity at a time here (serial.py)
            for _ in range(MAX_RETRIES):
                current = await self._readable(principal, store, entity_id)
                _check(principal, store, rule_op, current, if_match)
                new = change(current)
                await self.references.check(principal, store, current, new, implicit)
                new["updatedAt"] = next_update_time(current["updatedAt"])
                await self.indexes.ready(store.name)
                async with self._guarded(principal, store, current, new):
                    done = await self.writes.update(principal, store, current, new, _diff(current, new))
                if done:
                    await self._after_write(principal, store, "update", current, new)
                    return acl.visible(principal, store, new)
                if if_match is not None:
                    raise PreconditionFailed("The entity changed")
            raise Conflict("The entity keeps changing; try again")

    @contextlib.asynccontextmanager
    async def _guarded(self, principal: Principal, store: StoreSchema, before: Doc,
                       after: Doc | None) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as guards:
            for guard in self.write_guards:
                await guards.enter_async_context(guard(principal, store, before, after))
            yield

    async def _hashes(self, store: StoreSchema, given: Doc) -> dict[str, str]:
        """Hashes of the write-only values given (computed once, before any compare-and-swap)."""
        return {k: await self.hasher(v) for k, v in given.items() if k in store.write_only and isinstance(v, str)}

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
        self.events.publish(store, op, public(store, entity))


# --- the pure parts of a write ------------------------------------------------------------------

def _check(principal: Principal, store: StoreSchema, op: str | None, current: Doc, if_match: list[str] | None) -> None:
    """403 if the rules of `op` refuse the caller, then 412 if If-Match names another version."""
    if op is not None:
        acl.check(principal, store, op, current)
    if if_match is not None and "*" not in if_match and version(current) not in if_match:
        raise PreconditionFailed("If-Match does not match the entity's ETag")


def _patched(principal: Principal, store: StoreSchema, patch: Doc, hashes: dict[str, str], current: Doc) -> Doc:
    system, old = split(current)
    old = to_json_form(old)
    return _with_body(principal, store, system, old, merge_patch(old, patch), patch, hashes)


def _replaced(principal: Principal, store: StoreSchema, body: Doc, hashes: dict[str, str], current: Doc) -> Doc:
    system, old = split(current)
    old = to_json_form(old)
    # Write-only values (hashes) and properties the caller may not read survive a PUT that
    # leaves them out: the caller cannot read them back.
    unseen = store.write_only | acl.hidden_on(principal, store, current)
    kept = {k: old[k] for k in unseen if k in old and k not in body}
    return _with_body(principal, store, system, old, {**body, **kept}, body, hashes)


def _with_body(principal: Principal, store: StoreSchema, system: Doc, old: Doc, new: Doc, given: Doc,
               hashes: dict[str, str]) -> Doc:
    """The new stored entity: admin-only fields checked, the body validated (write-only values kept
    as stored: their hashes), write-only values given hashed."""
    barred = acl.check_changes(principal, store, system, old, new, given)
    if barred:
        new = {k: old[k] if k in barred else v for k, v in new.items() if k not in barred or k in old}
    store.validate(new, {k for k in store.write_only if k in new and k not in given})
    return {**system, **store.to_storage(new), **_hashed(store, given, hashes)}


def _hashed(store: StoreSchema, given: Doc, hashes: dict[str, str]) -> dict[str, str]:
    """The stored form of the write-only values given: their hashes."""
    fresh = {k for k, v in given.items() if k in store.write_only and v is not None}
    if unhashed := fresh - hashes.keys():  # only a string can be hashed (a schema may say otherwise)
        raise Invalid(fields={k: "must be a string" for k in sorted(unhashed)})
    return {k: hashes[k] for k in fresh}


def _access_set(principal: Principal, body: Doc, current: Doc) -> Doc:
    acl.check_access_change(principal, current, body)
    return {**current, **_access_changes(principal, body)}


def _implicit(body: Doc) -> list[str]:
    """The implicit references (`owner`, `group`) a write's body sets, for references.check."""
    return [k for k in ("owner", "group") if body.get(k) is not None]


def _new_system_fields(principal: Principal, body: Doc) -> Doc:
    changes = _access_changes(principal, body)
    now = utcnow()
    return {
        "_id": ObjectId(), "owner": principal.user_id,
        "group": changes.get("group", principal.primary_group),
        "access": changes.get("access", []), "branch": changes.get("branch", []),
        "createdAt": now, "updatedAt": now,
    }


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
    acl.check_group(principal, changes.get("group"))
    return changes


def _diff(current: Doc, new: Doc) -> Doc:
    """$set / $unset for the public fields; internal `_` fields (auth state) are left alone,
    so a concurrent credential revocation is never overwritten by an entity write."""
    gone = {k: "" for k in current if k not in new and not k.startswith("_")}
    update: Doc = {"$set": {k: v for k, v in new.items() if not k.startswith("_")}}
    if gone:
        update["$unset"] = gone
    return update


def _hide(principal: Principal, store: StoreSchema) -> dict[str, int] | None:
    """The projection of a read: what the caller may never see of the store left out."""
    unreadable = acl.unreadable(principal, store)
    return {f: 0 for f in unreadable} if unreadable else None


def _dropped(projection: Mapping[str, int] | None) -> tuple[str, ...] | None:
    """The top-level fields an exclusion projection leaves out (none without one); None for any
    other projection."""
    if projection is None:
        return ()
    if all(v == 0 and "." not in k for k, v in projection.items()):
        return tuple(projection)
    return None


def _left_out(items: list[Doc], hide: dict[str, int]) -> list[Doc]:
    """The fields `_hide` leaves out, dropped here if the database returned them anyway (jongodb
    ignores projections: every entity's `_change`, and hidden values, were in the answer)."""
    drop = list(hide)
    for doc in items:
        for name in drop:
            if name in doc:  # the driver's own fresh dict: cut in place (a copy cost 4x)
                del doc[name]
    return items


def _visible(principal: Principal, store: StoreSchema, doc: Doc | None) -> Doc | None:
    return None if doc is None else acl.visible(principal, store, doc)

