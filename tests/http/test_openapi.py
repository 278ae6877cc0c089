"""The OpenAPI document: valid 3.1, complete for every store, live with the schema folder."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from storeengine.http.openapi import ERRORS, build
from storeengine.model.schema import Registry


async def document(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/_openapi.json", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = r.json()
    return result


def schema_files(folder: Path) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


async def test_document_validates_and_names_every_property(client: httpx.AsyncClient,
                                                          admin: dict[str, str], schema_dir: Path) -> None:
    doc = await document(client, admin)
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    components = doc["components"]["schemas"]
    files = schema_files(schema_dir)
    assert len(files) >= 4
    for name in [*files, "users", "groups"]:
        raw = files.get(name)
        entity = components[name]["properties"]
        for system in ("_id", "owner", "group", "access", "branch", "createdAt", "updatedAt"):
            assert system in entity, (name, system)
        if raw is not None:
            for prop, sub in raw["properties"].items():
                assert prop in components[f"{name}.body"]["properties"], (name, prop)
                if not sub.get("writeOnly"):
                    assert prop in entity, (name, prop)
        assert f"/api/v1/{name}" in doc["paths"]
        assert set(doc["paths"][f"/api/v1/{name}/{{id}}"]) == {"get", "patch", "put", "delete"}
        assert "put" in doc["paths"][f"/api/v1/{name}/{{id}}/acl"]
        assert "get" in doc["paths"][f"/api/v1/{name}/_changes"]
        changes = {p["name"] for p in doc["paths"][f"/api/v1/{name}/_changes"]["get"]["parameters"]}
        assert {"since", "limit", "filter", "Last-Event-ID"} <= changes


async def test_write_only_fields_are_requests_only(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    components = (await document(client, admin))["components"]["schemas"]
    assert "password" in components["users.body"]["properties"]
    assert "password" not in components["users"]["properties"]
    assert "password" not in components["users"]["required"]
    assert "pin" not in components["things"]["properties"]
    params = {p["name"] for p in (await document(client, admin))["paths"]["/api/v1/things"]["get"]["parameters"]}
    assert "pin" not in params and {"count", "when", "offset", "limit", "filter", "sort", "meta"} <= params


async def test_list_parameters_carry_types_and_limits(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    doc = await document(client, admin)
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/things"]["get"]["parameters"]}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10000}
    assert params["offset"]["minimum"] == 0
    assert params["count"]["type"] == "integer"
    assert params["score"]["type"] == "number"
    assert params["flag"]["type"] == "boolean"
    assert params["ref"]["pattern"] == "^[0-9a-f]{24}$"
    assert params["tags"]["type"] == "string"


async def test_security_schemes_and_error_envelope(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    doc = await document(client, admin)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["cookie"] == {"type": "apiKey", "in": "cookie", "name": "sid"}
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert {k: schemes["tenant"][k] for k in ("type", "in", "name")} == {"type": "apiKey", "in": "header",
                                                                           "name": "Api-Key"}
    assert {"tenant": [], "bearer": []} in doc["security"]
    assert doc["paths"]["/api/v1/auth"]["post"]["security"] == []
    for code in ERRORS:
        assert doc["components"]["responses"][f"E{code}"]["content"]["application/json"]["schema"]["properties"][
            "code"] == {"const": str(code)}
    responses = doc["paths"]["/api/v1/products/{id}"]["patch"]["responses"]
    assert {"200", "400", "401", "403", "404", "412", "415"} <= set(responses)


async def test_document_needs_credentials(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/_openapi.json")
    assert r.status_code == 401
    assert r.json()["tags"] == ["error_unauthorized"]


async def test_document_follows_a_dropped_schema_file(client: httpx.AsyncClient, admin: dict[str, str],
                                                      schema_dir: Path) -> None:
    assert "/api/v1/gadgets" not in (await document(client, admin))["paths"]
    schema = {"type": "object", "properties": {"colour": {"type": "string"}, "volts": {"type": "number"}},
              "x-history": True}
    (schema_dir / "gadgets.json").write_text(json.dumps(schema))
    deadline = time.monotonic() + 2
    while True:
        doc = await document(client, admin)
        if "/api/v1/gadgets" in doc["paths"]:
            break
        assert time.monotonic() < deadline, "the document did not follow the new file within 2 s"
        await asyncio.sleep(0.05)
    validate(doc)
    assert {"colour", "volts"} <= set(doc["components"]["schemas"]["gadgets"]["properties"])
    assert "/api/v1/gadgets/{id}/_versions" in doc["paths"]
    assert "/api/v1/gadgets/{id}/_restore" in doc["paths"]
    (schema_dir / "gadgets.json").unlink()
    deadline = time.monotonic() + 2
    while "/api/v1/gadgets" in (await document(client, admin))["paths"]:
        assert time.monotonic() < deadline, "the document kept a removed store"
        await asyncio.sleep(0.05)


def test_document_is_cached_until_the_registry_changes(tmp_path: Path) -> None:
    from storeengine.http.openapi import DocumentCache

    (tmp_path / "one.json").write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}))
    registry = Registry(tmp_path)
    registry.rescan()
    cache = DocumentCache(registry)
    first = cache.get()
    assert cache.get() is first  # no rebuild without a change
    (tmp_path / "two.json").write_text(json.dumps({"type": "object"}))
    registry.rescan()
    assert b"/api/v1/two" in cache.get()


@pytest.mark.parametrize("ref_schema", [
    {"type": "object", "$defs": {"tag": {"type": "string", "maxLength": 5}},
     "properties": {"tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}}},
])
def test_a_files_own_refs_point_into_the_document(tmp_path: Path, ref_schema: dict[str, Any]) -> None:
    (tmp_path / "refs.json").write_text(json.dumps(ref_schema))
    registry = Registry(tmp_path)
    registry.rescan()
    doc = build(registry)
    validate(doc)
    items = doc["components"]["schemas"]["refs"]["properties"]["tags"]["items"]
    assert items == {"$ref": "#/components/schemas/refs.body/$defs/tag"}


async def test_other_methods_on_fixed_paths_are_405_with_allow(client: httpx.AsyncClient,
                                                                admin: dict[str, str]) -> None:
    for method, path, allow in [("POST", "/api/v1/_schemas", "GET, HEAD"), ("DELETE", "/api/v1/_openapi.json",
                                "GET, HEAD"), ("PUT", "/api/v1/auth/me", "GET, HEAD"), ("GET", "/api/v1/auth", "POST"),
                                ("PATCH", "/api/v1/auth/keys", "GET, HEAD, POST")]:
        r = await client.request(method, path, headers=admin)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow
        assert r.json()["tags"] == ["error_method_not_allowed"]
    # authentication still comes first
    assert (await client.post("/api/v1/_schemas")).status_code == 401


async def test_options_on_fixed_paths_names_their_own_methods(client: httpx.AsyncClient,
                                                              admin: dict[str, str]) -> None:
    for path, allow in [("/api/v1/_schemas", {"GET", "HEAD"}), ("/api/v1/auth", {"POST"}),
                        ("/api/v1/auth/keys", {"GET", "HEAD", "POST"})]:
        r = await client.options(path, headers=admin)
        assert r.status_code == 405, path
        assert {m.strip() for m in r.headers["allow"].split(",")} == allow, (path, r.headers["allow"])


async def test_tenant_paths_are_described(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    doc = await document(client, admin)
    assert set(doc["paths"]["/api/v1/_tenants"]) == {"get", "post"}
    assert set(doc["paths"]["/api/v1/_tenants/{name}"]) == {"get", "delete"}
    created = doc["paths"]["/api/v1/_tenants"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/NewTenant"}
    assert "key" in doc["components"]["schemas"]["NewTenant"]["required"]
    assert "key" not in doc["components"]["schemas"]["Tenant"]["properties"]


async def test_schema_checks_are_described_and_answer_as_described(client: httpx.AsyncClient,
                                                                   admin: dict[str, str]) -> None:
    from jsonschema import Draft202012Validator

    doc = await document(client, admin)
    validate(doc)
    ops = doc["paths"]["/api/v1/_schemas/{store}/_check"]
    assert set(ops) == {"get", "post"} and ops["post"]["requestBody"]["required"] is False
    components = doc["components"]["schemas"]
    r = await client.post("/api/v1/products", json={"name": "p", "price": 1}, headers=admin)
    assert r.status_code == 201, r.text
    strict = {"type": "object", "properties": {"price": {"type": "number", "minimum": 5}}}
    posted = await client.post("/api/v1/_schemas/products/_check", json=strict, headers=admin)
    assert posted.json()["invalid"] == 1
    Draft202012Validator(components["CheckReport"]).validate(posted.json())
    for _ in range(100):
        cached = (await client.get("/api/v1/_schemas/products/_check", headers=admin)).json()
        if cached["state"] != "running":
            break
        await asyncio.sleep(0.05)
    Draft202012Validator(components["SchemaCheck"]).validate(cached)
