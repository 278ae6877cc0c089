"""Access control in one place: who the caller is, and what a store's rules let them do.

Rules become MongoDB filters for every query (so `offset`, `limit` and `total` stay right)
and a yes/no for one operation on one entity. REST and Socket.IO both use this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

ADMIN_ROLE = "admin"
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


def _rule_filter(principal: Principal, rule: str) -> dict[str, Any] | bool:
    """One rule -> a filter, True (matches every entity) or False (matches none)."""
    uid, groups = principal.user_id, list(principal.groups)
    if rule == "authenticated":
        return uid is not None
    if rule.startswith("role:"):
        return rule[5:] in principal.roles
    if rule == "owner":
        return {"owner": uid} if uid else False
    if rule == "self":
        return {"_id": uid} if uid else False
    if rule == "group":
        return {"group": {"$in": groups}} if groups else False
    if rule == "member":
        return {"_id": {"$in": groups}} if groups else False
    if rule == "branch":
        return {"branch": {"$in": groups}} if groups else False
    if rule == "access":
        ids = ([uid] if uid else []) + groups
        return {"access": {"$in": ids}} if ids else False
    return False


def query_filter(principal: Principal, rules: Iterable[str]) -> dict[str, Any] | None:
    """The filter to AND into a query; None when the caller may see every entity."""
    if principal.is_admin:
        return None
    clauses = []
    for rule in rules:
        result = _rule_filter(principal, rule)
        if result is True:
            return None
        if result is not False:
            clauses.append(result)
    if not clauses:
        return NOTHING
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def restrict(query: dict[str, Any], principal: Principal, rules: Iterable[str]) -> dict[str, Any]:
    """AND the caller's read filter into a query."""
    extra = query_filter(principal, rules)
    if extra is None:
        return query
    if not query:
        return extra
    return {"$and": [query, extra]}


def _matches(entity: Mapping[str, Any], clause: Mapping[str, Any]) -> bool:
    if "$or" in clause:
        return any(_matches(entity, c) for c in clause["$or"])
    ((key, cond),) = clause.items()
    value = entity.get(key)
    if isinstance(cond, dict):  # {"$in": [...]}
        wanted = cond["$in"]
        values = value if isinstance(value, list) else [value]
        return any(v in wanted for v in values)
    return value == cond


def can(principal: Principal, rules: Iterable[str], entity: Mapping[str, Any]) -> bool:
    """May the caller do an operation governed by `rules` on this (stored-form) entity?"""
    extra = query_filter(principal, rules)
    return extra is None or (extra is not NOTHING and _matches(entity, extra))


def rooms_for_entity(store: str, rules: Iterable[str], entity: Mapping[str, Any]) -> list[str]:
    """Socket.IO rooms whose members may read this entity (see `rooms_for_principal`)."""
    rooms = [f"{store}:all"]
    for rule in rules:
        if rule in ("owner", "group") and entity.get(rule) is not None:
            rooms.append(f"{store}:{rule}:{entity[rule]}")
        elif rule in ("access", "branch"):
            rooms.extend(f"{store}:{rule}:{i}" for i in entity.get(rule) or ())
        elif rule in ("self", "member"):
            rooms.append(f"{store}:{rule}:{entity['_id']}")
    return rooms


def rooms_for_principal(store: str, rules: Iterable[str], principal: Principal) -> list[str]:
    """The rooms a subscriber joins: one per way its read rules can match an entity."""
    if query_filter(principal, rules) is None:
        return [f"{store}:all"]
    uid, groups = principal.user_id, principal.groups
    rooms = []
    for rule in rules:
        if rule in ("owner", "self") and uid:
            rooms.append(f"{store}:{rule}:{uid}")
        elif rule in ("group", "branch", "member"):
            rooms.extend(f"{store}:{rule}:{g}" for g in groups)
        elif rule == "access":
            rooms.extend(f"{store}:access:{i}" for i in ([uid] if uid else []) + list(groups))
    return rooms
