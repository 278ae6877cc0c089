"""Unit tests of storeengine/acl.py: rules -> filters, can(), and Socket.IO rooms agree."""

from __future__ import annotations

import pytest
from bson import ObjectId

from storeengine.acl import NOTHING, Principal, can, query_filter, restrict, rooms_for_entity, rooms_for_principal
from storeengine.schemas import DEFAULT_ACL

U, V, G, H = ObjectId(), ObjectId(), ObjectId(), ObjectId()
READ = DEFAULT_ACL["read"]
ENTITY = {"_id": ObjectId(), "owner": U, "group": G, "access": [V], "branch": [H]}
PRINCIPALS = {
    "owner": Principal(U), "group member": Principal(ObjectId(), (G,)), "listed user": Principal(V),
    "listed group member": Principal(ObjectId(), (V,)), "branch member": Principal(ObjectId(), (H,)),
    "stranger": Principal(ObjectId(), (ObjectId(),)), "admin": Principal(ObjectId(), roles=frozenset({"admin"})),
    "anonymous": Principal(None),
}
CAN_READ = {"owner", "group member", "listed user", "listed group member", "branch member", "admin"}


@pytest.mark.parametrize("who", PRINCIPALS)
def test_can_and_rooms_agree_for_default_read_rules(who):
    principal = PRINCIPALS[who]
    assert can(principal, READ, ENTITY) == (who in CAN_READ)
    shared = set(rooms_for_principal("s", READ, principal)) & set(rooms_for_entity("s", READ, ENTITY))
    assert bool(shared) == (who in CAN_READ)


def test_filters():
    assert query_filter(PRINCIPALS["admin"], READ) is None
    assert query_filter(Principal(U), ["authenticated"]) is None
    assert query_filter(Principal(None), ["authenticated"]) is NOTHING
    assert query_filter(Principal(U, roles=frozenset({"editor"})), ["role:editor"]) is None
    assert query_filter(Principal(U), ["role:editor"]) is NOTHING
    assert query_filter(Principal(U), ["owner"]) == {"owner": U}
    assert query_filter(Principal(U, (G,)), ["owner", "group"]) == {"$or": [{"owner": U}, {"group": {"$in": [G]}}]}
    assert restrict({}, Principal(U), ["owner"]) == {"owner": U}
    assert restrict({"n": 1}, Principal(U), ["owner"]) == {"$and": [{"n": 1}, {"owner": U}]}
    assert restrict({"n": 1}, PRINCIPALS["admin"], ["owner"]) == {"n": 1}


def test_builtin_self_and_member_rules():
    user = {"_id": U}
    assert can(Principal(U), ["self"], user) and not can(Principal(V), ["self"], user)
    group = {"_id": G}
    assert can(Principal(V, (G,)), ["member"], group) and not can(Principal(V, (H,)), ["member"], group)
    assert rooms_for_entity("users", ["self"], user) == ["users:all", f"users:self:{U}"]
    assert rooms_for_principal("users", ["self"], Principal(U)) == [f"users:self:{U}"]
    assert rooms_for_principal("users", ["self"], PRINCIPALS["admin"]) == ["users:all"]
