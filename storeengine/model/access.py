"""Access control in one place: who the caller is, and what a store's rules let them do.

Every access decision of the engine is made here. Each rule of `x-acl` is defined once, in
`RULES`, as a `Rule` that gives, from that one definition:

- the MongoDB filter for a caller (ANDed into every query, so `offset`, `limit` and `total` stay right),
- the in-memory yes/no for one caller and one entity (`can`),
- the Socket.IO rooms an entity is published to and the rooms a subscriber joins.

REST, the Socket.IO fan-out and the change feed all ask the same functions; the write checks
the service needs (property rules, who may change access and owner, which group a caller
may assign) are the `check_*` functions at the end.

Property rules (`x-read` / `x-write` on a property, rules of `x-acl`) are the same rules asked
of one property: `visible` is the one place an entity is cut down to what a caller may read
(answers, lists, events, the feed, versions, and expanded references call it), `unqueryable`
what they may not name in `only`/filter/sort/group, `view_rooms`/`readers_rooms` group
Socket.IO subscribers by view, and `check_changes` refuses a write to a property.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bson import ObjectId

from storeengine.core.documents import CARRIED
from storeengine.core.errors import Forbidden


class Guarded(Protocol):
    """What the write checks need of a store: its name and rules (the schema class has them; this
    module does not import it, so the schema can import the rules without a cycle)."""

    @property
    def name(self) -> str: ...

    @property
    def acl(self) -> Mapping[str, tuple[str, ...]]: ...

    @property
    def hidden(self) -> frozenset[str]: ...

    @property
    def read_rules(self) -> Mapping[str, tuple[str, ...]]: ...

    @property
    def write_rules(self) -> Mapping[str, tuple[str, ...]]: ...

ADMIN_ROLE = "admin"
ROLE_PREFIX = "role:"
# Stored with an entity, never part of it: left out of every read and every answer.
_INTERNAL = frozenset({CARRIED})
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Matches no document, yet stays index-backed.
NOTHING: dict[str, Any] = {"_id": {"$in": []}}


@dataclass(frozen=True)
class Credential:
    """What authenticated a request: `session`, `token` or `key`, and its id."""

    kind: str
    id: str


@dataclass(frozen=True)
class Principal:
    user_id: ObjectId | None
    groups: tuple[ObjectId, ...] = ()
    roles: frozenset[str] = frozenset()
    credential: Credential | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def primary_group(self) -> ObjectId | None:
        return self.groups[0] if self.groups else None


# The engine acting for itself (bootstrap, CLI): passes every rule.
SYSTEM = Principal(user_id=None, roles=frozenset({ADMIN_ROLE}))


# --- the rules -------------------------------------------------------------------------------

def _user(p: Principal) -> tuple[ObjectId, ...]:
    return (p.user_id,) if p.user_id else ()


def _groups(p: Principal) -> tuple[ObjectId, ...]:
    return p.groups


def _user_and_groups(p: Principal) -> tuple[ObjectId, ...]:
    return _user(p) + p.groups


@dataclass(frozen=True)
class Rule:
    """One `x-acl` rule. Either it compares an entity field with ids of the caller (`field`,
    `caller_ids`), or the caller alone decides it (`passes`: the rule matches every entity or none)."""

    name: str
    field: str | None = None
    caller_ids: Callable[[Principal], tuple[ObjectId, ...]] = _user
    passes: Callable[[Principal], bool] | None = None
    equality: bool = False  # the caller has at most one id here: a plain equality, the index-friendliest form
    builtin_only: bool = False  # `self` and `member` serve only the built-in users and groups stores

    def filter(self, principal: Principal) -> dict[str, Any] | bool:
        """A MongoDB filter, True (every entity) or False (none)."""
        if self.field is None:
            return self.passes is not None and self.passes(principal)
        ids = self.caller_ids(principal)
        if not ids:
            return False
        return {self.field: ids[0]} if self.equality else {self.field: {"$in": list(ids)}}

    def entity_ids(self, entity: Mapping[str, Any]) -> list[Any]:
        """The ids of this entity's field (a single value or a list; None and missing are none)."""
        if self.field is None:
            return []
        value = entity.get(self.field)
        values = value if isinstance(value, list) else [value]
        return [v for v in values if v is not None]

    def matches(self, principal: Principal, entity: Mapping[str, Any]) -> bool:
        if self.field is None:
            return self.passes is not None and self.passes(principal)
        ids = self.caller_ids(principal)
        return any(v in ids for v in self.entity_ids(entity))

    def entity_rooms(self, store: str, entity: Mapping[str, Any]) -> list[str]:
        return [f"{store}:{self.name}:{v}" for v in self.entity_ids(entity)]

    def principal_rooms(self, store: str, principal: Principal) -> list[str]:
        if self.field is None:
            return []  # a rule the caller passes makes the filter None: the `all` room
        return [f"{store}:{self.name}:{i}" for i in self.caller_ids(principal)]


RULES: Mapping[str, Rule] = {r.name: r for r in (
    Rule("owner", "owner", _user, equality=True),
    Rule("group", "group", _groups),
    Rule("access", "access", _user_and_groups),
    Rule("branch", "branch", _groups),
    Rule("authenticated", passes=lambda p: p.user_id is not None),
    Rule("self", "_id", _user, equality=True, builtin_only=True),
    Rule("member", "_id", _groups, builtin_only=True),
)}
PUBLIC_RULES = frozenset(name for name, r in RULES.items() if not r.builtin_only)
BUILTIN_RULES = frozenset(RULES)


def rule(name: str) -> Rule | None:
    """The rule of a name, `role:<name>` included; None for an unknown name (which refuses)."""
    if name.startswith(ROLE_PREFIX):
        role = name[len(ROLE_PREFIX):]
        return Rule(name, passes=lambda p: role in p.roles) if _ROLE_NAME.fullmatch(role) else None
    return RULES.get(name)


def is_rule(name: str, *, builtin: bool = False) -> bool:
    """May a schema use this rule name? (schemas.compile_schema asks.)"""
    found = rule(name)
    return found is not None and (builtin or not found.builtin_only)


def _rules(names: Iterable[str]) -> list[Rule]:
    return [r for r in map(rule, names) if r is not None]


# --- reading: filters, yes/no, rooms -----------------------------------------------------------

def query_filter(principal: Principal, rules: Iterable[str]) -> dict[str, Any] | None:
    """The filter to AND into a query; None when the caller may see every entity."""
    if principal.is_admin:
        return None
    clauses = []
    for r in _rules(rules):
        result = r.filter(principal)
        if result is True:
            return None
        if result is not False:
            clauses.append(result)
    if not clauses:
        return NOTHING
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def restrict(query: dict[str, Any], principal: Principal, rules: Iterable[str]) -> dict[str, Any]:
    """AND the caller's read filter into a query: side by side in one document when no top-level
    key collides (top-level keys are ANDed), so that the server sees `_id` at the top of a GET by
    id (jongodb spent 2 to 3 times the CPU on `{$and: [{_id}, {$or}]}` as on `{_id, $or}`)."""
    extra = query_filter(principal, rules)
    if extra is None:
        return query
    if not query:
        return extra
    if query.keys().isdisjoint(extra):
        return {**query, **extra}
    return {"$and": [query, extra]}


def can(principal: Principal, rules: Iterable[str], entity: Mapping[str, Any]) -> bool:
    """May the caller do an operation governed by `rules` on this (stored-form) entity?
    The change feed asks it of the entity before and after a write."""
    return principal.is_admin or any(r.matches(principal, entity) for r in _rules(rules))


def rooms_for_entity(store: str, rules: Iterable[str], entity: Mapping[str, Any]) -> list[str]:
    """Socket.IO rooms whose members may read this entity (see `rooms_for_principal`)."""
    return [f"{store}:all", *(room for r in _rules(rules) for room in r.entity_rooms(store, entity))]


def rooms_for_principal(store: str, rules: Iterable[str], principal: Principal) -> list[str]:
    """The rooms a subscriber joins: one per way its read rules can match an entity."""
    if query_filter(principal, rules) is None:
        return [f"{store}:all"]
    return [room for r in _rules(rules) for room in r.principal_rooms(store, principal)]


# --- property rules: what of an entity a caller may read ------------------------------------

def _reach(principal: Principal, rules: Iterable[str]) -> str:
    """How far a caller passes rules: on `all` entities, on `none`, or on `some` (by entity)."""
    found = query_filter(principal, rules)
    return "all" if found is None else "none" if found == NOTHING else "some"


def unqueryable(principal: Principal, store: Guarded) -> frozenset[str]:
    """Properties the caller may not read on every entity: `only`, filters, sorts and groups
    treat them as undeclared (so neither their values nor their existence leak through a query)."""
    return frozenset(p for p, rules in store.read_rules.items() if _reach(principal, rules) != "all")


def unreadable(principal: Principal, store: Guarded) -> frozenset[str]:
    """What a query's projection leaves out for the caller: hidden values, and properties whose
    `x-read` the caller fails on every entity."""
    return store.hidden | _INTERNAL | {p for p, rules in store.read_rules.items() if _reach(principal, rules) == "none"}


def property_view(principal: Principal, store: Guarded) -> tuple[frozenset[str], frozenset[str]]:
    """(properties the caller reads on no entity, those they read on some entities only) by the
    store's `x-read` rules: what the API description leaves out or marks for this caller."""
    if principal.is_admin or not store.read_rules:
        return frozenset(), frozenset()
    reach = {p: _reach(principal, rules) for p, rules in store.read_rules.items()}
    return (frozenset(p for p, how in reach.items() if how == "none"),
            frozenset(p for p, how in reach.items() if how == "some"))


def hidden_on(principal: Principal, store: Guarded, entity: Mapping[str, Any]) -> frozenset[str]:
    """The properties of this (stored-form) entity whose `x-read` the caller fails."""
    if principal.is_admin or not store.read_rules:
        return frozenset()
    return frozenset(p for p, rules in store.read_rules.items() if p in entity and not can(principal, rules, entity))


def visible(principal: Principal, store: Guarded, entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as this caller may see it: no hidden values, no property whose `x-read` they
    fail on it. Every way an entity leaves the server goes through here (expand included)."""
    drop = store.hidden | _INTERNAL | hidden_on(principal, store, entity)
    return {k: v for k, v in entity.items() if k not in drop} if drop & entity.keys() else dict(entity)


def view_rooms(store: Guarded, principal: Principal) -> list[str]:
    """Socket.IO rooms of the caller's view of a store with `x-read` properties: one room per
    view (the properties they read never, and those they read by entity), plus, for each
    by-entity property, the rooms of its rules (see `readers_rooms`)."""
    if not store.read_rules:
        return []
    reach = {p: "all" if principal.is_admin else _reach(principal, r) for p, r in store.read_rules.items()}
    never = sorted(p for p, how in reach.items() if how == "none")
    some = sorted(p for p, how in reach.items() if how == "some")
    rooms = [f"{store.name}:view:{json.dumps([never, some], separators=(',', ':'))}"]
    for p in some:
        rooms += rooms_for_principal(f"{store.name}:x:{p}", store.read_rules[p], principal)
    return rooms


def parse_view_room(store: str, room: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """(properties never read, properties read by entity) of a view room of `store`; None for other rooms."""
    prefix = f"{store}:view:"
    if not room.startswith(prefix):
        return None
    never, some = json.loads(room[len(prefix):])
    return frozenset(never), tuple(some)


def readers_rooms(store: Guarded, prop: str, entity: Mapping[str, Any]) -> list[str]:
    """The rooms whose members may read `prop` on this entity (members of its view rooms that
    read it by entity)."""
    return rooms_for_entity(f"{store.name}:x:{prop}", store.read_rules[prop], entity)


# --- writing: the checks the service makes --------------------------------------------------------

def check(principal: Principal, store: Guarded, op: str, entity: Mapping[str, Any]) -> None:
    """403 unless the store's rules for `op` let the caller act on this entity."""
    if not can(principal, store.acl[op], entity):
        raise Forbidden(f"You may not {op} this entity")


def check_create(principal: Principal, store: Guarded, system: Mapping[str, Any],
                 payload: Mapping[str, Any]) -> None:
    """The create rules (on the system fields the new entity will get), then the property rules."""
    if not can(principal, store.acl["create"], system):
        raise Forbidden(f"You may not create in {store.name}")
    check_changes(principal, store, system, {}, payload, payload, verb="set")


def check_changes(principal: Principal, store: Guarded, entity: Mapping[str, Any], old: Mapping[str, Any],
                  new: Mapping[str, Any], given: Iterable[str] = (), verb: str = "change") -> frozenset[str]:
    """403 when a write changes a property whose `x-write` the caller fails on this (stored-form)
    entity; leaving it as it is is fine, unless the write names (`given`) one the caller may not
    read either: sending its value back would tell whether a guess was right. `x-admin-only` is
    `"x-write": []`: admins only. The properties the caller may not write: their stored values
    are kept as they are (an equal value of another type, 3.0 for 3, would change them)."""
    if principal.is_admin or not store.write_rules:
        return frozenset()
    barred = frozenset(p for p, rules in store.write_rules.items() if not can(principal, rules, entity))
    named = set(given)
    denied = sorted(p for p in barred if new.get(p) != old.get(p)
                    or (p in named and p in store.read_rules and not can(principal, store.read_rules[p], entity)))
    if not denied:
        return barred
    if all(not store.write_rules[p] for p in denied):
        raise Forbidden(f"Only admins may {verb}: {', '.join(denied)}")
    raise Forbidden(f"You may not {verb}: {', '.join(denied)}")


def check_access_change(principal: Principal, current: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """PUT /acl: the owner or an admin; changing the owner itself: admins only. Checked on the
    entity found, so a caller who may not read it still gets 404 first."""
    if not principal.is_admin and current.get("owner") != principal.user_id:
        raise Forbidden("Only the owner or an admin may change access")
    if "owner" in body and not principal.is_admin:
        raise Forbidden("Only admins may change the owner")


def check_group(principal: Principal, group: ObjectId | None) -> None:
    """A caller may put an entity only in one of their own groups (admins: in any)."""
    if group is not None and not principal.is_admin and group not in principal.groups:
        raise Forbidden("group must be one of your own groups")
