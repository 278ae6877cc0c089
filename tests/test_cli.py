"""The command line: `storeengine check-schemas` and the refusals of `storeengine serve` (API.md 5, 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "schemas"
OK = {"type": "object", "properties": {"name": {"type": "string"}}}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any STORE_ setting, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STORE_")}, **extra}


def storeengine(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storeengine", *args], check=False, cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    """A folder with one good file and several bad ones; one has several problems."""
    d = tmp_path / "bad"
    d.mkdir()
    files = {
        "good.json": OK,
        "Upper.json": OK,
        "users.json": OK,
        "arrays.json": {"type": "array"},
        "refs.json": {"type": "object", "properties": {
            "a": {"type": "string", "format": "objectid", "x-ref": "acl"},
            "b": {"type": "array", "items": {"type": "string", "format": "objectid", "x-ref": "_x"}}}},
        # A reference to a store that does not exist yet is fine (writes through it are refused).
        "later.json": {"type": "object", "properties": {"a": {"type": "string", "format": "objectid",
                                                               "x-ref": "not_yet"}}},
        "many.json": {"type": "object", "properties": {"owner": {"type": "string"}},
                      "x-acl": {"read": ["everyone"]}, "x-indexes": [{"fields": {"nope": 1}}]},
    }
    for name, content in files.items():
        (d / name).write_text(json.dumps(content))
    (d / "syntax.json").write_text('{"type": "object",')
    return d


BAD_FILES = {
    "Upper.json": ["'Upper'"],
    "users.json": ["reserved"],
    "arrays.json": ['"type": "object"'],
    "refs.json": ["'a': x-ref: 'acl' is a reserved name", "'b': x-ref must name a store"],
    "many.json": ["'owner'", "everyone", "'nope'"],
    "syntax.json": ["JSON"],
}


def test_check_schemas_accepts_the_example_folder() -> None:
    result = storeengine("check-schemas", str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in EXAMPLES.glob("*.json"):
        assert path.name in result.stdout


def test_check_schemas_reports_every_problem_of_every_file(bad_dir: Path) -> None:
    result = storeengine("check-schemas", str(bad_dir))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = output.splitlines()
    for name, fragments in BAD_FILES.items():
        for fragment in fragments:
            assert any(name in line and fragment in line for line in lines), (name, fragment, output)
    assert "Traceback" not in output
    # The good files are not blamed.
    for good in ("good.json", "later.json"):
        assert not any(good in line and "ok" not in line for line in lines), output


def test_check_schemas_defaults_to_store_schema_dir(bad_dir: Path, tmp_path: Path) -> None:
    result = storeengine("check-schemas", cwd=tmp_path, env=clean_env(STORE_SCHEMA_DIR=str(bad_dir)))
    assert result.returncode != 0
    assert "arrays.json" in result.stdout + result.stderr


def test_check_schemas_defaults_to_the_schemas_folder_of_the_working_directory() -> None:
    result = storeengine("check-schemas", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_schemas_of_a_missing_folder_fails(tmp_path: Path) -> None:
    result = storeengine("check-schemas", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    assert "nowhere" in result.stdout + result.stderr


def test_serve_refuses_several_workers_on_an_in_memory_database(tmp_path: Path) -> None:
    env = clean_env(STORE_SECRET="test-secret-of-at-least-32-bytes!!", STORE_DATA_DIR=":memory:")
    result = storeengine("serve", "--workers", "2", "--port", str(free_port()), "--schemas", str(EXAMPLES),
                         cwd=tmp_path, env=env, timeout=20)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "STORE_DATA_DIR" in output and "workers" in output, output
    assert "Traceback" not in output


def test_tenant_create_list_delete_on_the_embedded_database(tmp_path: Path) -> None:
    import httpx

    from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, HERE

    data = tmp_path / "data"
    env = clean_env(STORE_DATA_DIR=str(data), STORE_SCHEMA_DIR=str(HERE / "schemas"), STORE_ARGON2_TIME_COST="1",
                    STORE_ARGON2_MEMORY_KIB="64", STORE_ADMIN_PASSWORD=ADMIN_PASSWORD)
    server = start_server(HERE / "schemas", tmp_path / "first.log", env={"STORE_DATA_DIR": str(data)})
    try:
        token = httpx.post(f"{server.url}/api/v1/auth/token",
                           json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}).json()["token"]
        made = httpx.post(f"{server.url}/api/v1/things", json={"name": "public one"},
                          headers={"Authorization": f"Bearer {token}"})
        assert made.status_code == 201, made.text
        busy = storeengine("tenant", "list", env=env)  # the server holds the folder
        assert busy.returncode == 2 and "in use by another storeengine server" in busy.stderr, busy.stderr
    finally:
        stop_server(server)

    r = storeengine("tenant", "create", "acme", "--admin-login", "boss", "--admin-password", "boss-password-1",
                    env=env)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout.strip().splitlines()[-1])
    assert created["name"] == "acme" and created["status"] == "ready" and created["key"].startswith("tk_")
    assert (data / "tenants" / "acme.db").is_file()
    listed = storeengine("tenant", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["acme"]
    assert "tk_" not in listed.stdout
    again = storeengine("tenant", "create", "acme", "--admin-login", "x", "--admin-password", "x-password-1",
                        env=env)
    assert again.returncode == 1 and '"409"' in again.stderr, again.stderr

    server = start_server(HERE / "schemas", tmp_path / "second.log", env={"STORE_DATA_DIR": str(data)})
    try:
        login = httpx.post(f"{server.url}/api/v1/auth/token", headers={"Api-Key": created["key"]},
                           json={"login": "boss", "password": "boss-password-1"})
        assert login.status_code == 200, login.text
        things = httpx.get(f"{server.url}/api/v1/things",
                           headers={"Authorization": f"Bearer {login.json()['token']}"}).json()
        assert [t["_id"] for t in things] == [made.json()["_id"]]
    finally:
        stop_server(server)

    r = storeengine("tenant", "delete", "acme", env=env)
    assert r.returncode == 0, r.stderr
    assert not (data / "tenants" / "acme.db").exists()
    assert storeengine("tenant", "list", env=env).stdout == ""
    missing = storeengine("tenant", "delete", "acme", env=env)
    assert missing.returncode == 1 and '"404"' in missing.stderr


def _embedded_things(data: Path, docs: list[dict[str, object]]) -> None:
    """Entities written straight into an embedded data folder (as an older schema allowed them)."""
    import asyncio

    from storeengine.app import build_context
    from storeengine.settings import Settings
    from storeengine.storage.sqlite import SqliteStorage

    ctx, _ = build_context(Settings(data_dir=str(data), schema_dir=EXAMPLES, secret="x" * 32))
    asyncio.run(ctx.storage.collection("things").insert_many(docs))
    assert isinstance(ctx.storage, SqliteStorage)
    ctx.storage.shut()  # frees the folder's lock


def test_check_schemas_data_reads_an_embedded_folder_no_server_holds(tmp_path: Path) -> None:
    from bson import ObjectId

    schemas, data, bad = tmp_path / "schemas", tmp_path / "data", ObjectId()
    schemas.mkdir()
    (schemas / "things.json").write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    _embedded_things(data, [{"_id": ObjectId(), "n": 1}, {"_id": bad, "n": "one"}])
    env = clean_env(STORE_DATA_DIR=str(data), STORE_SECRET="x" * 32)
    result = storeengine("check-schemas", "--data", str(schemas), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"things/{bad}: n: " in result.stdout and "things: 1 of 2 entities fail its schema" in result.stdout

    server = start_server(schemas, tmp_path / "server.log", env={"STORE_DATA_DIR": str(data)})
    try:  # a server holds the folder: refused, never read beside it
        held = storeengine("check-schemas", "--data", str(schemas), env=env)
    finally:
        stop_server(server)
    assert held.returncode == 2 and "another storeengine server" in held.stderr, held.stdout + held.stderr
    assert "Traceback" not in held.stderr

    memory = storeengine("check-schemas", "--data", str(schemas), env=clean_env(STORE_DATA_DIR=":memory:"))
    assert memory.returncode == 2 and ":memory:" in memory.stderr, memory.stderr
