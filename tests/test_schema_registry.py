"""Schema files: checking, compiling, hot reload and isolation of bad files (API.md 5)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storeengine.errors import NotFound
from storeengine.schemas import Registry, SchemaError, compile_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas"
OK = {"type": "object", "properties": {"name": {"type": "string"}}}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_example_schemas_compile(path):
    store = compile_schema(path.stem, json.loads(path.read_text()))
    assert store.name == path.stem


@pytest.mark.parametrize("name,raw,problem", [
    ("Bad", OK, "must match"), ("1abc", OK, "must match"), ("a" * 65, OK, "must match"),
    ("users", OK, "reserved"), ("groups", OK, "reserved"), ("auth", OK, "reserved"), ("_x", OK, "must match"),
    ("s", {"type": "array"}, '"type": "object"'),
    ("s", {"type": "object", "properties": {"a": {"type": "nonsense"}}}, "JSON Schema"),
    ("s", {"type": "object", "properties": {"owner": {"type": "string"}}}, "system field"),
    ("s", {"type": "object", "properties": {"_secret": {"type": "string"}}}, "may not start"),
    ("s", {**OK, "x-acl": {"write": ["owner"]}}, "unknown operation"),
    ("s", {**OK, "x-acl": {"read": ["everyone"]}}, "unknown rules"),
    ("s", {**OK, "x-acl": {"read": ["self"]}}, "unknown rules"),
    ("s", {**OK, "x-acl": {"read": "owner"}}, "list of rule names"),
    ("s", {**OK, "x-indexes": [{"fields": {"nope": 1}}]}, "not a declared property"),
    ("s", {**OK, "x-indexes": [{"fields": {"name": 2}}]}, "direction"),
    ("s", {**OK, "x-indexes": [{"fields": {"name": 1}, "sparse": True}]}, "only 'fields'"),
    ("s", {**OK, "x-indexes": {"fields": {"name": 1}}}, "must be a list"),
])
def test_bad_definitions_are_refused_with_the_reason(name, raw, problem):
    with pytest.raises(SchemaError) as info:
        compile_schema(name, raw)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_every_problem_is_listed():
    raw = {"type": "array", "properties": {"owner": {}}, "x-acl": {"read": ["nobody"]}}
    with pytest.raises(SchemaError) as info:
        compile_schema("Bad", raw)
    assert len(info.value.problems) == 4


def test_role_rules_and_engine_keywords_are_accepted():
    store = compile_schema("s", {**OK, "x-acl": {"delete": ["role:editor", "owner"]},
                                 "x-indexes": [{"fields": {"name": 1, "createdAt": -1}, "unique": True}]})
    assert store.acl["delete"] == ("role:editor", "owner")
    assert store.acl["read"] == ("owner", "group", "access", "branch")
    assert store.indexes[0].keys == (("name", 1), ("createdAt", -1)) and store.indexes[0].unique


def write(folder: Path, name: str, raw: object) -> None:
    path = folder / f"{name}.json"
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    # A new mtime even within the filesystem's timestamp granularity.
    stamp = time.time_ns() + 10_000_000
    os.utime(path, ns=(stamp, stamp))


def test_registry_follows_the_folder(tmp_path):
    registry = Registry(tmp_path)
    write(tmp_path, "a", OK)
    write(tmp_path, "b", "{not json")
    assert [s.name for s in registry.rescan()] == ["a"]
    assert registry.get("a").properties.keys() == {"name"}
    status = registry.status()
    assert status["a"]["error"] is None and status["b"]["schema"] is None and "JSON" in status["b"]["error"]
    assert registry.rescan() == []  # nothing changed, nothing reloaded
    write(tmp_path, "a", {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
    assert [s.name for s in registry.rescan()] == ["a"] and "n" in registry.get("a").properties
    write(tmp_path, "a", {"type": "wrong"})
    registry.rescan()
    assert "n" in registry.get("a").properties  # keeps the last valid version
    assert registry.status()["a"]["error"] and registry.status()["a"]["schema"]["properties"]["n"]
    write(tmp_path, "a", OK)
    registry.rescan()
    assert registry.status()["a"]["error"] is None
    (tmp_path / "a.json").unlink()
    (tmp_path / "b.json").unlink()
    registry.rescan()
    assert registry.status() == {}
    with pytest.raises(NotFound):
        registry.get("a")


async def wait_for_status(client, headers, url: str, status: int, timeout: float = 2.0) -> float:
    start = time.monotonic()
    while True:
        if (await client.get(url, headers=headers)).status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{url} did not answer {status} within {timeout}s"
        await asyncio.sleep(0.05)


async def test_schemas_endpoint_and_live_reload(client, admin, schema_dir):
    body = (await client.get("/api/v1/_schemas", headers=admin)).json()
    assert body["things"]["error"] is None and body["things"]["schema"]["type"] == "object"
    write(schema_dir, "widgets", OK)
    write(schema_dir, "broken", {"type": "object", "x-acl": {"read": ["nobody"]}})
    await wait_for_status(client, admin, "/api/v1/widgets", 200)
    assert (await client.get("/api/v1/broken", headers=admin)).status_code == 404
    assert (await client.get("/api/v1/things", headers=admin)).status_code == 200
    status = (await client.get("/api/v1/_schemas", headers=admin)).json()
    assert "unknown rules" in status["broken"]["error"] and status["broken"]["schema"] is None
    write(schema_dir, "things", "{")
    await asyncio.sleep(0.3)
    assert (await client.post("/api/v1/things", json={"name": "still"}, headers=admin)).status_code == 201
    assert (await client.get("/api/v1/_schemas", headers=admin)).json()["things"]["error"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storeengine", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_check_schemas_cli(tmp_path):
    good = run_cli("check-schemas", str(EXAMPLES))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "products.json: ok" in good.stdout
    write(tmp_path, "fine", OK)
    write(tmp_path, "Bad", {"type": "array"})
    write(tmp_path, "worse", "[")
    bad = run_cli("check-schemas", str(tmp_path))
    assert bad.returncode == 1
    assert "fine.json: ok" in bad.stdout
    assert "Bad.json: store name 'Bad' must match" in bad.stdout and 'Bad.json: schema must have "type"' in bad.stdout
    assert "worse.json: cannot read JSON" in bad.stdout


def test_workers_need_a_real_database():
    env = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}
    r = run_cli("serve", "--workers", "2", env=env)
    assert r.returncode != 0 and "STORE_MONGODB_URI" in r.stderr
