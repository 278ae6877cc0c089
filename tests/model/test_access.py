"""Unit tests of storeengine/acl.py: rules -> MongoDB filters, can(), restrict() and Socket.IO rooms agree.
The filters are run by the embedded database's query compiler (storage.testing.matches)."""

from __future__ import annotations

import copy
import itertools

import pytest
from bson import ObjectId

from storeengine.core.errors import Forbidden
from storeengine.model import access as acl
from storeengine.model import schema as schemas
from storeengine.model.access import (
    NOTHING,
    Principal,
    can,
    query_filter,
    restrict,
    rooms_for_entity,
    rooms_for_principal,
)
from storeengine.model.schema import DEFAULT_ACL
from storeengine.storage.testing import matches as filter_applies

OWNER, LISTED, OTHER = ObjectId(), ObjectId(), ObjectId()
G_OWNER, G_LISTED, G_BRANCH, G_OTHER = ObjectId(), ObjectId(), ObjectId(), ObjectId()
ENTITY = {"_id": ObjectId(), "owner": OWNER, "group": G_OWNER, "access": [LISTED, G_LISTED], "branch": [G_BRANCH]}

PRINCIPALS = {
    "owner": Principal(OWNER, (G_OTHER,)),
    "group member": Principal(ObjectId(), (G_OTHER, G_OWNER)),  # any of the caller's groups, not only the first
    "listed user": Principal(LISTED),
    "listed group member": Principal(ObjectId(), (G_LISTED,)),
    "branch member": Principal(ObjectId(), (G_BRANCH,)),
    "stranger": Principal(OTHER, (G_OTHER,)),
    "no groups": Principal(ObjectId()),
    "editor": Principal(ObjectId(), roles=frozenset({"editor"})),
    "admin": Principal(ObjectId(), roles=frozenset({"admin"})),
    "anonymous": Principal(None),
}
SIGNED_IN = set(PRINCIPALS) - {"anonymous"}
# rule -> who passes it for ENTITY (admins pass every rule)
PASSES = {
    "owner": {"owner", "admin"},
    "group": {"group member", "admin"},
    "access": {"listed user", "listed group member", "admin"},
    "branch": {"branch member", "admin"},
    "authenticated": SIGNED_IN,
    "role:editor": {"editor", "admin"},
    "role:edit": {"admin"},  # role names match exactly, not by prefix
    "role:admin": {"admin"},
    "nonsense": {"admin"},  # an unknown rule refuses (fails closed)
}
RULE_SETS = [
    (), ("owner",), ("group",), ("access",), ("branch",), ("authenticated",), ("role:editor",),
    DEFAULT_ACL["read"], DEFAULT_ACL["update"], DEFAULT_ACL["delete"], ("owner", "group", "access"),
    ("owner", "role:editor"), ("group", "branch"), ("access", "authenticated"), ("nonsense", "owner"),
]
# Entities with the awkward shapes: no owner (made by the system), no group, missing or empty lists.
ENTITIES = [
    ENTITY,
    {"_id": ObjectId(), "owner": None, "group": None, "access": [], "branch": []},
    {"_id": ObjectId(), "owner": OTHER, "group": G_OTHER, "access": [OWNER], "branch": [G_OWNER, G_LISTED]},
    {"_id": ObjectId(), "owner": LISTED},
    {"_id": ObjectId(), "owner": OWNER, "group": G_BRANCH, "access": [G_BRANCH], "branch": [LISTED]},
]


def test_default_rules_are_the_documented_ones():
    assert {k: tuple(v) for k, v in DEFAULT_ACL.items()} == {
        "create": ("authenticated",), "read": ("owner", "group", "access", "branch"),
        "update": ("owner", "access"), "delete": ("owner",),
    }


@pytest.mark.parametrize("rule", list(PASSES))
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_each_rule_on_its_own(rule, who):
    assert can(PRINCIPALS[who], [rule], ENTITY) is (who in PASSES[rule])


@pytest.mark.parametrize("rules", RULE_SETS, ids=lambda r: ",".join(r) or "none")
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_a_rule_list_passes_when_any_rule_passes(rules, who):
    expected = who == "admin" or any(who in PASSES[r] for r in rules)
    assert can(PRINCIPALS[who], rules, ENTITY) is expected


@pytest.mark.parametrize("rules", RULE_SETS, ids=lambda r: ",".join(r) or "none")
def test_query_filter_selects_exactly_what_can_allows(rules):
    """The filter ANDed into every query, run by a MongoDB matcher, agrees with can() on each entity."""
    for (who, principal), entity in itertools.product(PRINCIPALS.items(), ENTITIES):
        where = query_filter(principal, rules)
        matched = True if where is None else filter_applies(where, entity)
        assert matched is can(principal, rules, entity), (who, rules, entity)


def test_admin_and_global_rules_need_no_filter():
    admin = PRINCIPALS["admin"]
    for rules in RULE_SETS:
        assert query_filter(admin, rules) is None
    assert query_filter(PRINCIPALS["stranger"], ["authenticated"]) is None
    assert query_filter(PRINCIPALS["stranger"], ["owner", "authenticated"]) is None
    assert query_filter(PRINCIPALS["editor"], ["owner", "role:editor"]) is None


@pytest.mark.parametrize("who,rules", [
    ("anonymous", ["authenticated"]), ("anonymous", DEFAULT_ACL["read"]), ("stranger", []),
    ("stranger", ["role:editor"]), ("stranger", ["nonsense"]), ("no groups", ["group", "branch"]),
    ("editor", ["role:editors"]),
])
def test_filters_that_match_nothing(who, rules):
    where = query_filter(PRINCIPALS[who], rules)
    assert where == NOTHING
    assert not any(filter_applies(where, e) for e in ENTITIES)


def test_filter_shapes():
    p = Principal(OWNER, (G_OWNER, G_BRANCH))
    assert query_filter(p, ["owner"]) == {"owner": OWNER}
    assert query_filter(p, ["group"]) == {"group": {"$in": [G_OWNER, G_BRANCH]}}
    assert query_filter(p, ["branch"]) == {"branch": {"$in": [G_OWNER, G_BRANCH]}}
    assert query_filter(p, ["access"]) == {"access": {"$in": [OWNER, G_OWNER, G_BRANCH]}}
    assert query_filter(p, ["owner", "group"]) == {"$or": [{"owner": OWNER}, {"group": {"$in": [G_OWNER, G_BRANCH]}}]}
    # rules the caller cannot meet drop out instead of producing a clause
    assert query_filter(Principal(OWNER), ["owner", "group", "role:x"]) == {"owner": OWNER}
    assert query_filter(Principal(None), ["owner", "access"]) == NOTHING


def test_an_anonymous_caller_never_owns_an_ownerless_entity():
    ownerless = {"_id": ObjectId(), "owner": None, "group": None, "access": [], "branch": []}
    anonymous = PRINCIPALS["anonymous"]
    for rules in RULE_SETS:
        assert not can(anonymous, rules, ownerless)
        where = query_filter(anonymous, rules)
        assert where is not None and not filter_applies(where, ownerless)


def test_restrict_ands_the_rules_into_a_query():
    p = PRINCIPALS["owner"]
    assert restrict({}, p, ["owner"]) == {"owner": OWNER}
    # side by side when no top-level key collides, so an `_id` stays at the top for the server
    assert restrict({"n": 1}, p, ["owner"]) == {"n": 1, "owner": OWNER}
    assert restrict({"_id": OTHER}, p, ["owner", "access"]) == {"_id": OTHER, **query_filter(p, ["owner", "access"])}
    assert restrict({"owner": OTHER}, p, ["owner"]) == {"$and": [{"owner": OTHER}, {"owner": OWNER}]}
    assert restrict({"$or": [{"n": 1}]}, p, ["owner", "access"]) == \
        {"$and": [{"$or": [{"n": 1}]}, query_filter(p, ["owner", "access"])]}
    assert restrict({"n": 1}, PRINCIPALS["admin"], ["owner"]) == {"n": 1}
    assert restrict({"n": 1}, p, ["authenticated"]) == {"n": 1}
    assert restrict({"n": 1}, PRINCIPALS["anonymous"], ["owner"]) == {"n": 1, **NOTHING}
    assert restrict({"_id": OTHER}, PRINCIPALS["anonymous"], ["owner"]) == {"$and": [{"_id": OTHER}, NOTHING]}


HOSTILE = [
    {"$or": [{"owner": {"$exists": True}}, {"owner": {"$exists": False}}]},
    {"owner": {"$ne": None}},
    {"$nor": [{"_id": None}]},
    {"$or": [{"owner": OWNER}, {"_id": {"$exists": True}}]},
    {"_id": {"$exists": True}, "$or": [{"owner": OTHER}]},
    {"_id": {"$exists": True}},  # merged side by side with the rules' own keys
    {"access": {"$exists": True}, "$nor": [{"owner": None}]},
]


@pytest.mark.parametrize("query", HOSTILE, ids=str)
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_restrict_never_widens_and_leaves_the_query_alone(query, who):
    principal, rules = PRINCIPALS[who], DEFAULT_ACL["read"]
    original = copy.deepcopy(query)
    where = restrict(query, principal, rules)
    assert query == original
    for entity in ENTITIES:
        assert filter_applies(where, entity) is (filter_applies(query, entity) and can(principal, rules, entity))


# --- Socket.IO rooms -----------------------------------------------------------------------------

def test_rooms_of_an_entity_under_the_default_read_rules():
    rooms = rooms_for_entity("orders", DEFAULT_ACL["read"], ENTITY)
    assert sorted(rooms) == sorted([
        "orders:all", f"orders:owner:{OWNER}", f"orders:group:{G_OWNER}", f"orders:access:{LISTED}",
        f"orders:access:{G_LISTED}", f"orders:branch:{G_BRANCH}",
    ])
    bare = {"_id": ObjectId(), "owner": None, "group": None, "access": [], "branch": []}
    assert rooms_for_entity("orders", DEFAULT_ACL["read"], bare) == ["orders:all"]
    assert rooms_for_entity("orders", DEFAULT_ACL["read"], {"_id": ObjectId()}) == ["orders:all"]
    assert rooms_for_entity("products", ["authenticated"], ENTITY) == ["products:all"]


def test_rooms_of_a_principal():
    assert rooms_for_principal("orders", DEFAULT_ACL["read"], PRINCIPALS["admin"]) == ["orders:all"]
    assert rooms_for_principal("orders", ["authenticated"], PRINCIPALS["stranger"]) == ["orders:all"]
    assert rooms_for_principal("notes", ["role:editor"], PRINCIPALS["editor"]) == ["notes:all"]
    assert rooms_for_principal("notes", ["role:editor"], PRINCIPALS["stranger"]) == []
    assert rooms_for_principal("orders", DEFAULT_ACL["read"], PRINCIPALS["anonymous"]) == []
    assert sorted(rooms_for_principal("orders", DEFAULT_ACL["read"], PRINCIPALS["stranger"])) == sorted([
        f"orders:owner:{OTHER}", f"orders:group:{G_OTHER}", f"orders:access:{OTHER}",
        f"orders:access:{G_OTHER}", f"orders:branch:{G_OTHER}",
    ])
    # rooms are per store: a subscriber of one store never shares a room with another store's entity
    assert not set(rooms_for_principal("notes", DEFAULT_ACL["read"], PRINCIPALS["owner"])) \
        & set(rooms_for_entity("orders", DEFAULT_ACL["read"], ENTITY))


@pytest.mark.parametrize("rules", RULE_SETS, ids=lambda r: ",".join(r) or "none")
def test_rooms_reach_exactly_the_readers(rules):
    """An event for an entity reaches a subscriber (they share a room) iff that subscriber may read it."""
    for (who, principal), entity in itertools.product(PRINCIPALS.items(), ENTITIES):
        shared = set(rooms_for_principal("s", rules, principal)) & set(rooms_for_entity("s", rules, entity))
        assert bool(shared) is can(principal, rules, entity), (who, rules, entity)


# --- the rule table and the write checks ----------------------------------------------------------

def test_every_rule_of_the_table_agrees_with_itself():
    """self/member (built-in stores) too: filter, in-memory match and rooms give one answer."""
    user_entity = {"_id": OWNER}
    group_entity = {"_id": G_OWNER}
    for name in acl.RULES:
        for (who, principal), entity in itertools.product(PRINCIPALS.items(), [*ENTITIES, user_entity, group_entity]):
            where = query_filter(principal, [name])
            matched = True if where is None else filter_applies(where, entity)
            shared = set(rooms_for_principal("s", [name], principal)) & set(rooms_for_entity("s", [name], entity))
            assert matched is can(principal, [name], entity) is bool(shared), (who, name, entity)
    assert can(PRINCIPALS["owner"], ["self"], user_entity)
    assert can(PRINCIPALS["group member"], ["member"], group_entity)
    assert not can(PRINCIPALS["stranger"], ["self", "member"], user_entity)


def test_schema_rule_names_come_from_the_table():
    assert {"owner", "group", "access", "branch", "authenticated"} == acl.PUBLIC_RULES
    assert acl.PUBLIC_RULES | {"self", "member"} == acl.BUILTIN_RULES
    assert schemas.PUBLIC_RULES is acl.PUBLIC_RULES
    assert acl.is_rule("role:editor") and not acl.is_rule("role:") and not acl.is_rule("role:a b")
    assert not acl.is_rule("self") and acl.is_rule("self", builtin=True)


def _store(**extra):
    raw = {"type": "object", "properties": {"n": {"type": "integer"}, "tier": {"type": "string", "x-admin-only": True}},
           **extra}
    return schemas.compile_schema("things", raw)


def test_write_checks():
    store, owner, stranger, admin = _store(), PRINCIPALS["owner"], PRINCIPALS["stranger"], PRINCIPALS["admin"]
    acl.check_create(owner, store, {"owner": OWNER}, {"n": 1})
    with pytest.raises(Forbidden, match="Only admins may set: tier"):
        acl.check_create(owner, store, {"owner": OWNER}, {"tier": "gold"})
    with pytest.raises(Forbidden, match="may not create"):
        acl.check_create(PRINCIPALS["anonymous"], store, {"owner": None}, {"n": 1})
    acl.check_create(admin, store, {}, {"tier": "gold"})
    acl.check_changes(owner, store, ENTITY, {"tier": "gold", "n": 1}, {"tier": "gold", "n": 2})
    with pytest.raises(Forbidden, match="Only admins may change: tier"):
        acl.check_changes(owner, store, ENTITY, {"tier": "gold"}, {})
    acl.check_changes(admin, store, ENTITY, {"tier": "gold"}, {})
    acl.check(owner, store, "delete", ENTITY)
    with pytest.raises(Forbidden):
        acl.check(stranger, store, "delete", ENTITY)


def test_access_change_and_group_checks():
    acl.check_access_change(PRINCIPALS["owner"], ENTITY, {"access": []})
    with pytest.raises(Forbidden, match="owner or an admin"):
        acl.check_access_change(PRINCIPALS["listed user"], ENTITY, {"access": []})
    with pytest.raises(Forbidden, match="Only admins may change the owner"):
        acl.check_access_change(PRINCIPALS["owner"], ENTITY, {"owner": str(OTHER)})
    acl.check_access_change(PRINCIPALS["admin"], ENTITY, {"owner": str(OTHER)})
    acl.check_group(PRINCIPALS["group member"], G_OWNER)
    acl.check_group(PRINCIPALS["stranger"], None)
    acl.check_group(PRINCIPALS["admin"], G_LISTED)
    with pytest.raises(Forbidden, match="one of your own groups"):
        acl.check_group(PRINCIPALS["stranger"], G_OWNER)
