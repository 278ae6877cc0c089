"""x-ref in schema files (model/references.py via compile_schema) and `expand` trees (model/expand.py)."""

from __future__ import annotations

from typing import Any

import pytest

from storeengine.core.errors import BadRequest, NotFound
from storeengine.model.expand import MAX_PATHS, parse_expand, split_params, with_reference_fields
from storeengine.model.references import Reference
from storeengine.model.schema import SchemaError, StoreSchema, compile_schema, load_builtin


def schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


REF = {"type": "string", "format": "objectid"}


def test_single_and_array_references_and_the_implicit_ones() -> None:
    store = compile_schema("tasks", schema(
        customer={**REF, "x-ref": "customers"},
        maybe={"type": ["string", "null"], "format": "objectid", "x-ref": "customers"},
        watchers={"type": "array", "items": {**REF, "x-ref": "users"}},
        plain=REF,
    ))
    assert store.references == {
        "owner": Reference("owner", "users"), "group": Reference("group", "groups"),
        "customer": Reference("customer", "customers"), "maybe": Reference("maybe", "customers"),
        "watchers": Reference("watchers", "users", many=True),
    }
    assert [r.prop for r in store.declared_references] == ["customer", "maybe", "watchers"]


def test_a_store_that_does_not_exist_yet_and_the_builtin_ones_may_be_referred_to() -> None:
    for target in ("not-yet", "users", "groups"):
        assert compile_schema("a", schema(x={**REF, "x-ref": target})).references["x"].target == target


@pytest.mark.parametrize(("prop", "problem"), [
    ({**REF, "x-ref": "auth"}, "reserved"),
    ({**REF, "x-ref": "acl"}, "reserved"),
    ({**REF, "x-ref": "_changes"}, "must name a store"),
    ({**REF, "x-ref": "Bad Name"}, "must name a store"),
    ({**REF, "x-ref": 3}, "must name a store"),
    ({"type": "string", "x-ref": "users"}, '"format": "objectid"'),
    ({"type": "integer", "x-ref": "users"}, '"type": "string"'),
    ({"type": "array", "x-ref": "users", "items": REF}, "only on a top-level property or its items"),
    ({"type": "object", "properties": {"a": {**REF, "x-ref": "users"}}}, "only on a top-level property"),
    ({"type": "array", "items": {"type": "array", "items": {**REF, "x-ref": "users"}}}, "only on a top-level"),
])
def test_check_schemas_refuses_a_bad_x_ref(prop: dict[str, Any], problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema("a", schema(x=prop))
    assert any(problem in p and "'x'" in p for p in caught.value.problems), caught.value.problems


def test_acl_is_a_reserved_store_name() -> None:
    with pytest.raises(SchemaError, match="reserved"):
        compile_schema("acl", schema())


# --- expand ---------------------------------------------------------------------------------

def stores() -> dict[str, StoreSchema]:
    return {
        "users": load_builtin("users"), "groups": load_builtin("groups"),
        "customers": compile_schema("customers", schema(portfolio={**REF, "x-ref": "portfolios"}, name={})),
        "portfolios": compile_schema("portfolios", schema(lead={**REF, "x-ref": "customers"},
                                                          gone={**REF, "x-ref": "nowhere"})),
    }


def lookup(name: str) -> StoreSchema:
    found = stores().get(name)
    if found is None:
        raise NotFound(name)
    return found


def tree_of(raw: str, store: str = "customers") -> Any:
    def shape(nodes: Any) -> Any:
        return {k: (n.target.name, shape(n.children)) for k, n in nodes.items()}
    return shape(parse_expand(raw, lookup(store), lookup))


def test_paths_share_their_prefixes_and_a_cycle_is_only_depth() -> None:
    assert tree_of("portfolio,owner,portfolio.lead,portfolio.lead.portfolio") == {
        "portfolio": ("portfolios", {"lead": ("customers", {"portfolio": ("portfolios", {})})}),
        "owner": ("users", {}),
    }
    assert tree_of("group") == {"group": ("groups", {})}


@pytest.mark.parametrize(("raw", "message"), [
    ("name", "not a reference"),
    ("nothing", "not a reference"),
    ("", "not a reference"),
    ("portfolio.", "not a reference"),
    ("portfolio.lead.portfolio.lead", "deeper than 3"),
    ("portfolio.gone", "does not exist"),
    ("owner.password", "not a reference"),
    (",".join(["owner"] * (MAX_PATHS + 1)), "at most 10"),
])
def test_bad_expand_paths(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        tree_of(raw)


def test_expand_and_via_are_read_apart_once_each() -> None:
    rest, ours = split_params([("limit", "2"), ("expand", "a"), ("via", "b"), ("sort", "x")])
    assert rest == [("limit", "2"), ("sort", "x")] and ours == {"expand": "a", "via": "b"}
    with pytest.raises(BadRequest, match="more than once"):
        split_params([("expand", "a"), ("expand", "b")])


def test_only_keeps_the_expanded_references() -> None:
    tree = parse_expand("portfolio", lookup("customers"), lookup)
    assert with_reference_fields({"_id": 1, "name": 1}, tree) == {"_id": 1, "name": 1, "portfolio": 1}
    assert with_reference_fields(None, tree) is None
    assert with_reference_fields({"_id": 1, "portfolio.x": 1}, tree) == {"_id": 1, "portfolio": 1}
