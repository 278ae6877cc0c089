"""Schema files: compiling and checking, the registry's rescans, `GET /api/v1/_schemas` and hot
reload through the API (API.md 5)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from storeengine.core.errors import Invalid, NotFound
from storeengine.model.schema import Registry, SchemaError, compile_schema
from tests.paths import ROOT, TEST_SCHEMAS

EXAMPLES = ROOT / "schemas"
FILE_STORES = {"products", "orders", "notes", "things"}
OK: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}}
GADGET: dict[str, Any] = {"type": "object", "properties": {"label": {"type": "string"}},
                          "required": ["label"], "additionalProperties": False}


def write(directory: Path, name: str, content: Any) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / f"{name}.json").write_text(text)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 2.0) -> None:
    """Poll `check` until it holds; fail if it does not within `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.05)


def assert_error(r: httpx.Response, status: int, tag: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == str(status) and tag in body["tags"], body
    assert isinstance(body["message"], str)


# --- compile_schema ------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted([*EXAMPLES.glob("*.json"), *TEST_SCHEMAS.glob("*.json")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_schemas_compile(path: Path) -> None:
    raw = json.loads(path.read_text())
    store = compile_schema(path.stem, raw)
    assert store.name == path.stem and store.raw == raw
    assert set(store.properties) == set(raw.get("properties", {}))


def test_examples_folder_is_not_empty() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.json")} >= {"products", "orders", "notes"}


@pytest.mark.parametrize("name,problem", [
    ("Products", "'Products'"),
    ("1abc", "'1abc'"),
    ("a" * 65, "'" + "a" * 65 + "'"),
    ("auth", "reserved"),
    ("users", "reserved"),
    ("groups", "reserved"),
    ("_x", "'_x'"),
    ("has space", "'has space'"),
])
def test_bad_store_names_are_refused(name: str, problem: str) -> None:
    with pytest.raises(SchemaError) as info:
        compile_schema(name, OK)
    assert any(problem in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("name", ["a", "a" * 64, "my-store_2", "z9"])
def test_good_store_names_are_accepted(name: str) -> None:
    assert compile_schema(name, OK).name == name


def with_props(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"name": {"type": "string"}, **props}}


@pytest.mark.parametrize("raw,problem", [
    ({"type": "array"}, '"type": "object"'),
    ({"properties": {"name": {"type": "string"}}}, '"type": "object"'),
    ([1, 2], "JSON object"),
    (with_props(a={"type": "nonsense"}), "JSON Schema"),
    (with_props(a={"type": "string", "minLength": -1}), "JSON Schema"),
    ({**OK, "required": "name"}, "JSON Schema"),
    *[(with_props(**{field: {"type": "string"}}), f"{field!r} is a system field")
      for field in ("_id", "owner", "group", "access", "branch", "createdAt", "updatedAt")],
    (with_props(_secret={"type": "string"}), "'_secret'"),
    (with_props(**{"$where": {"type": "string"}}), "'$where'"),
    (with_props(**{"a.b": {"type": "string"}}), "'a.b'"),
    ({**OK, "x-acl": {"write": ["owner"]}}, "unknown operation 'write'"),
    ({**OK, "x-acl": {"read": ["everyone"]}}, "everyone"),
    ({**OK, "x-acl": {"read": ["self"]}}, "self"),  # built-in stores only
    ({**OK, "x-acl": {"update": ["role:"]}}, "role:"),
    ({**OK, "x-acl": {"read": "owner"}}, "x-acl.read"),
    ({**OK, "x-acl": {"delete": [1]}}, "x-acl.delete"),
    ({**OK, "x-acl": ["owner"]}, "x-acl"),
    ({**OK, "x-indexes": [{"fields": {"nope": 1}}]}, "'nope'"),
    ({**OK, "x-indexes": [{"fields": {"name": 2}}]}, "direction"),
    ({**OK, "x-indexes": [{"fields": {"name": True}}]}, "direction"),
    ({**OK, "x-indexes": [{"fields": {"name": 1}, "sparse": True}]}, "x-indexes[0]"),
    ({**OK, "x-indexes": [{"fields": {"name": 1}, "unique": "yes"}]}, "x-indexes[0]"),
    ({**OK, "x-indexes": [{"fields": {}}]}, "x-indexes[0]"),
    ({**OK, "x-indexes": {"fields": {"name": 1}}}, "x-indexes"),
    (with_props(a={"type": "object", "properties": {"b": {"type": "string", "x-read": ["owner"]}}}),
     "property 'a': x-read apply to top-level properties only"),
    (with_props(a={"type": "array", "items": {"properties": {"b": {"x-write": [], "x-admin-only": True}}}}),
     "property 'a': x-admin-only, x-write apply to top-level properties only"),
    (with_props(a={"type": "object", "properties": {"pin": {"type": "string", "writeOnly": True}}}),
     "property 'a': writeOnly apply to top-level properties only"),
    (with_props(a={"$ref": "#/$defs/nope"}), "properties.a: $ref '#/$defs/nope' does not resolve"),
    (with_props(a={"$ref": "http://example.com/a.json"}), "does not resolve within the file"),
    (with_props(a={"type": "array", "items": {"$ref": "#nowhere"}}), "properties.a.items: $ref"),
    ({**OK, "$defs": {"b": {"$ref": "#/$defs/c"}}}, "$defs.b: $ref"),
])
def test_bad_definitions_are_refused_with_the_reason(raw: Any, problem: str) -> None:
    with pytest.raises(SchemaError) as info:
        compile_schema("s", raw)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_references_within_the_file_resolve() -> None:
    tags = {"type": "array", "items": {"$ref": "#/$defs/more"}}
    raw = {**OK, "$defs": {"code": {"type": "string", "pattern": "^[A-Z]+$"}, "more": {"$ref": "#/$defs/code"}},
           "properties": {"name": {"$ref": "#/$defs/code"}, "tags": tags,
                          "anchored": {"$ref": "#there"}, "data": {"const": {"$ref": "#/not/a/reference"}}}}
    raw["$defs"]["there"] = {"$anchor": "there", "type": "integer"}
    store = compile_schema("s", raw)
    store.validate({"name": "AB", "tags": ["C"], "anchored": 1, "data": {"$ref": "#/not/a/reference"}})
    with pytest.raises(Invalid):
        store.validate({"name": "ab"})


def test_every_problem_is_listed_not_only_the_first() -> None:
    raw = {
        "type": "array",
        "properties": {"owner": {"type": "string"}, "_hidden": {"type": "string"}, "name": {"type": "string"}},
        "x-acl": {"write": ["owner"], "read": ["nobody"]},
        "x-indexes": [{"fields": {"missing": 1}}, {"fields": {"name": 2}}],
    }
    with pytest.raises(SchemaError) as info:
        compile_schema("Bad", raw)
    problems = info.value.problems
    expected = ["'Bad'", '"type": "object"', "'owner'", "'_hidden'", "'write'", "nobody", "'missing'", "direction"]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) >= len(expected)
    assert str(info.value) == "; ".join(problems)


def test_role_rules_and_engine_keywords_are_accepted() -> None:
    store = compile_schema("s", {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
        "x-acl": {"delete": ["owner", "role:editor"], "read": ["authenticated"]},
        "x-indexes": [{"fields": {"email": 1}, "unique": True}, {"fields": {"name": -1, "createdAt": 1}}],
    })
    assert store.acl["delete"] == ("owner", "role:editor")
    assert store.acl["read"] == ("authenticated",)
    assert store.acl["create"] == ("authenticated",)  # defaults kept for the others
    assert [(i.keys, i.unique) for i in store.indexes] == [
        ((("email", 1),), True), ((("name", -1), ("createdAt", 1)), False)]


def test_default_acl() -> None:
    assert dict(compile_schema("s", OK).acl) == {
        "create": ("authenticated",), "read": ("owner", "group", "access", "branch"),
        "update": ("owner", "access"), "delete": ("owner",),
    }


# --- Registry.rescan -----------------------------------------------------------------------

@pytest.fixture
def registry(schema_dir: Path) -> Registry:
    reg = Registry(schema_dir)
    assert {s.name for s in reg.rescan()} == FILE_STORES
    return reg


def test_rescan_loads_every_file_and_status_shows_them(registry: Registry, schema_dir: Path) -> None:
    status = registry.status()
    for name in FILE_STORES:
        assert status[name] == {"schema": json.loads((schema_dir / f"{name}.json").read_text()), "error": None}
        assert registry.get(name).name == name
    assert {"users", "groups"} <= {s.name for s in registry.all()}


def test_rescan_without_changes_compiles_nothing(registry: Registry) -> None:
    before = registry.get("things")
    assert registry.rescan() == []
    assert registry.get("things") is before


def test_rescan_picks_up_an_added_file(registry: Registry, schema_dir: Path) -> None:
    with pytest.raises(NotFound):
        registry.get("gadgets")
    write(schema_dir, "gadgets", GADGET)
    assert [s.name for s in registry.rescan()] == ["gadgets"]
    assert registry.get("gadgets").raw == GADGET
    assert registry.status()["gadgets"] == {"schema": GADGET, "error": None}


def test_rescan_picks_up_a_changed_file(registry: Registry, schema_dir: Path) -> None:
    changed = {"type": "object", "properties": {"name": {"type": "string"}, "colour": {"type": "string"}}}
    write(schema_dir, "things", changed)
    assert [s.name for s in registry.rescan()] == ["things"]
    assert set(registry.get("things").properties) == {"name", "colour"}
    assert registry.status()["things"] == {"schema": changed, "error": None}


def test_rescan_picks_up_a_removed_file(registry: Registry, schema_dir: Path) -> None:
    (schema_dir / "notes.json").unlink()
    registry.rescan()
    with pytest.raises(NotFound):
        registry.get("notes")
    assert "notes" not in registry.status()
    assert {"products", "orders", "things"} <= set(registry.status())


@pytest.mark.parametrize("content,problem", [
    ({"type": "array"}, '"type": "object"'),
    ('{"type": "object", ', "JSON"),
    ({**OK, "x-acl": {"read": ["everyone"]}}, "everyone"),
])
def test_an_invalid_new_file_is_reported_and_affects_no_other_store(
        registry: Registry, schema_dir: Path, content: Any, problem: str) -> None:
    others = {name: registry.get(name) for name in FILE_STORES}
    write(schema_dir, "broken", content)
    assert registry.rescan() == []
    status = registry.status()
    assert status["broken"]["schema"] is None
    assert problem in status["broken"]["error"]
    with pytest.raises(NotFound):
        registry.get("broken")
    for name, store in others.items():
        assert registry.get(name) is store
        assert status[name]["error"] is None


def test_a_file_turning_invalid_keeps_its_last_valid_schema_until_fixed(registry: Registry,
                                                                       schema_dir: Path) -> None:
    valid = registry.get("things")
    write(schema_dir, "things", {"type": "object", "properties": {"owner": {"type": "string"}}})
    assert registry.rescan() == []
    assert registry.get("things") is valid
    status = registry.status()["things"]
    assert status["schema"] == valid.raw
    assert "'owner' is a system field" in status["error"]

    fixed = {"type": "object", "properties": {"title": {"type": "string"}}}
    write(schema_dir, "things", fixed)
    assert [s.name for s in registry.rescan()] == ["things"]
    assert registry.status()["things"] == {"schema": fixed, "error": None}
    assert set(registry.get("things").properties) == {"title"}


def test_removing_an_invalid_file_clears_its_error(registry: Registry, schema_dir: Path) -> None:
    write(schema_dir, "broken", {"type": "array"})
    registry.rescan()
    assert registry.status()["broken"]["error"]
    (schema_dir / "broken.json").unlink()
    registry.rescan()
    assert "broken" not in registry.status()


# --- over the API --------------------------------------------------------------------------

async def test_schemas_endpoint_needs_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/_schemas"), 401, "error_unauthorized")


async def test_schemas_endpoint_shape(client: httpx.AsyncClient, admin: dict[str, str], schema_dir: Path) -> None:
    r = await client.get("/api/v1/_schemas", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= FILE_STORES
    for name in FILE_STORES:
        assert body[name] == {"schema": json.loads((schema_dir / f"{name}.json").read_text()), "error": None}


async def test_a_dropped_file_is_served_within_two_seconds(client: httpx.AsyncClient, admin: dict[str, str],
                                                           schema_dir: Path) -> None:
    assert_error(await client.get("/api/v1/gadgets", headers=admin), 404, "error_not_found")
    write(schema_dir, "gadgets", GADGET)

    async def served() -> bool:
        return (await client.get("/api/v1/gadgets", headers=admin)).status_code == 200

    await eventually(served, "new store gadgets served")
    r = await client.post("/api/v1/gadgets", json={"label": "x"}, headers=admin)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/gadgets", json={"label": 3, "extra": 1}, headers=admin)
    assert_error(r, 400, "error_validation")
    assert set(r.json()["fields"]) == {"label", "extra"}
    listed = (await client.get("/api/v1/gadgets", headers=admin)).json()
    assert [e["label"] for e in listed] == ["x"]
    body = (await client.get("/api/v1/_schemas", headers=admin)).json()
    assert body["gadgets"] == {"schema": GADGET, "error": None}


async def test_an_invalid_file_answers_404_and_others_keep_working(client: httpx.AsyncClient,
                                                                  admin: dict[str, str], schema_dir: Path) -> None:
    write(schema_dir, "broken", {"type": "object", "properties": {"_id": {"type": "string"}}})

    async def reported() -> bool:
        body = (await client.get("/api/v1/_schemas", headers=admin)).json()
        return "broken" in body

    await eventually(reported, "invalid file reported by /_schemas")
    body = (await client.get("/api/v1/_schemas", headers=admin)).json()
    assert body["broken"]["schema"] is None
    assert "'_id'" in body["broken"]["error"]
    assert all(body[name]["error"] is None for name in FILE_STORES)
    assert_error(await client.get("/api/v1/broken", headers=admin), 404, "error_not_found")
    assert_error(await client.post("/api/v1/broken", json={"_id": "x"}, headers=admin), 404, "error_not_found")
    r = await client.post("/api/v1/things", json={"name": "still here"}, headers=admin)
    assert r.status_code == 201, r.text
    assert (await client.get("/api/v1/things", headers=admin)).json()[0]["name"] == "still here"


async def test_a_store_whose_file_turns_invalid_is_still_served(client: httpx.AsyncClient, admin: dict[str, str],
                                                                schema_dir: Path) -> None:
    original = json.loads((schema_dir / "notes.json").read_text())
    write(schema_dir, "notes", {"type": "object", "properties": {"title": {"type": "nonsense"}}})

    async def errored() -> bool:
        return (await client.get("/api/v1/_schemas", headers=admin)).json()["notes"]["error"] is not None

    await eventually(errored, "invalid notes.json reported")
    status = (await client.get("/api/v1/_schemas", headers=admin)).json()["notes"]
    assert status["schema"] == original and "JSON Schema" in status["error"]
    # The last valid schema still validates: title is required, pinned a boolean.
    r = await client.post("/api/v1/notes", json={"pinned": "yes"}, headers=admin)
    assert_error(r, 400, "error_validation")
    assert set(r.json()["fields"]) == {"title", "pinned"}
    r = await client.post("/api/v1/notes", json={"title": "kept"}, headers=admin)
    assert r.status_code == 201, r.text

    write(schema_dir, "notes", original)

    async def cleared() -> bool:
        return (await client.get("/api/v1/_schemas", headers=admin)).json()["notes"]["error"] is None

    await eventually(cleared, "fixed notes.json clears the error")
    assert [n["title"] for n in (await client.get("/api/v1/notes", headers=admin)).json()] == ["kept"]
