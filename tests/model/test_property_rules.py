"""Property rules (API.md 15), table-driven: principal, operation, rule, expected."""

from __future__ import annotations

import pytest
from bson import ObjectId

from storeengine.core.errors import Forbidden
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import SchemaError, compile_schema

OWNER, G = ObjectId(), ObjectId()
ENTITY = {"_id": ObjectId(), "owner": OWNER, "group": G, "access": [], "branch": [], "secret": "s"}
WHO = {
    "owner": Principal(OWNER),
    "group member": Principal(ObjectId(), (G,)),
    "hr": Principal(ObjectId(), roles=frozenset({"hr"})),
    "stranger": Principal(ObjectId()),
    "admin": Principal(ObjectId(), roles=frozenset({"admin"})),
}


def _store(keyword: str, rules: list[str] | None = None, **flags: object) -> acl.Guarded:
    prop: dict[str, object] = {"type": "string", **flags}
    if rules is not None:
        prop[keyword] = rules
    return compile_schema("things", {"type": "object", "properties": {"secret": prop, "open": {"type": "string"}}})


# (principal, operation, rule, expected): read -> sees `secret` on ENTITY; query -> may filter/sort/group
# by it; write -> may change it (True) or 403.
TABLE = [
    *[(who, "read", rules, who in passing) for rules, passing in [
        (["owner"], {"owner", "admin"}),
        (["group"], {"group member", "admin"}),
        (["role:hr"], {"hr", "admin"}),
        (["authenticated"], set(WHO)),
        ([], {"admin"}),
        (["owner", "role:hr"], {"owner", "hr", "admin"}),
    ] for who in WHO],
    # Querying by a property needs its x-read on every entity: an entity-relative rule is not enough.
    *[(who, "query", rules, who in passing) for rules, passing in [
        (["owner"], {"admin"}),
        (["role:hr"], {"hr", "admin"}),
        (["authenticated"], set(WHO)),
        ([], {"admin"}),
    ] for who in WHO],
    *[(who, "write", rules, who in passing) for rules, passing in [
        (["owner"], {"owner", "admin"}),
        (["role:hr"], {"hr", "admin"}),
        ([], {"admin"}),
    ] for who in WHO],
]


@pytest.mark.parametrize(("who", "operation", "rules", "expected"), TABLE)
def test_property_rule(who: str, operation: str, rules: list[str], expected: bool) -> None:
    principal = WHO[who]
    if operation == "read":
        store = _store("x-read", rules)
        assert ("secret" in acl.visible(principal, store, ENTITY)) is expected
        assert ("secret" in acl.hidden_on(principal, store, ENTITY)) is not expected
    elif operation == "query":
        store = _store("x-read", rules)
        assert ("secret" not in acl.unqueryable(principal, store)) is expected
        assert store.seen_by(principal).knows_field("secret") is expected
    else:
        store = _store("x-write", rules)
        try:
            acl.check_changes(principal, store, ENTITY, {"secret": "s"}, {"secret": "t"})
            allowed = True
        except Forbidden:
            allowed = False
        assert allowed is expected
        acl.check_changes(principal, store, ENTITY, {"secret": "s", "open": 1}, {"secret": "s", "open": 2})


def test_admin_only_is_an_empty_write_rule_list() -> None:
    store = _store("x-write", None, **{"x-admin-only": True})
    assert store.write_rules == {"secret": ()} and store.admin_only == {"secret"}
    with pytest.raises(Forbidden, match="Only admins may set: secret"):
        acl.check_create(WHO["owner"], store, {"owner": OWNER}, {"secret": "x"})


def test_a_caller_who_never_reads_it_has_it_left_out_by_the_projection() -> None:
    store = _store("x-read", ["role:hr"])
    assert "secret" in acl.unreadable(WHO["stranger"], store)
    assert "secret" not in acl.unreadable(WHO["hr"], store)
    by_entity = _store("x-read", ["owner"])
    assert "secret" not in acl.unreadable(WHO["stranger"], by_entity)  # decided per entity, after the read


@pytest.mark.parametrize(("prop", "problem"), [
    ({"x-read": ["nobody"]}, "x-read: unknown rules ['nobody']"),
    ({"x-write": ["self"]}, "x-write: unknown rules ['self']"),  # built-in stores only
    ({"x-read": "owner"}, "x-read must be a list of rule names"),
    ({"x-admin-only": "yes"}, "x-admin-only must be true or false"),
    ({"x-admin-only": True, "x-write": ["owner"]}, "x-admin-only or x-write, not both"),
])
def test_bad_property_rules_are_schema_problems(prop: dict[str, object], problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema("things", {"type": "object", "properties": {"secret": {"type": "string", **prop}}})
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_view_rooms_group_subscribers_by_what_they_read() -> None:
    raw = {"type": "object", "properties": {"salary": {"x-read": ["role:hr"]}, "notes": {"x-read": ["owner"]}}}
    store = compile_schema("staff", raw)
    hr, other, admin = WHO["hr"], WHO["stranger"], WHO["admin"]
    assert acl.view_rooms(store, hr)[0] != acl.view_rooms(store, other)[0]
    assert acl.view_rooms(store, other)[0] == acl.view_rooms(store, Principal(ObjectId()))[0]
    assert acl.parse_view_room("staff", acl.view_rooms(store, other)[0]) == (frozenset({"salary"}), ("notes",))
    assert acl.parse_view_room("staff", acl.view_rooms(store, admin)[0]) == (frozenset(), ())
    # by-entity properties: the subscriber also joins the rooms of that property's rules
    owner_rooms = acl.view_rooms(store, WHO["owner"])[1:]
    assert set(owner_rooms) & set(acl.readers_rooms(store, "notes", ENTITY))
    assert not set(acl.view_rooms(store, other)[1:]) & set(acl.readers_rooms(store, "notes", ENTITY))
    assert acl.view_rooms(compile_schema("plain", {"type": "object"}), hr) == []
