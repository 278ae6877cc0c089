"""`POST /api/v1/_schemas/:store/_check` and `storeengine check-schemas --data` (API.md 15)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD

LANES = ("embedded", "wire")
CHECK = "/api/v1/_schemas/products/_check"
PRODUCTS = json.loads((Path(__file__).parent.parent / "schemas" / "products.json").read_text())
STRICTER = {**PRODUCTS, "required": ["name", "price", "sku"],
            "properties": {**PRODUCTS["properties"], "price": {"type": "number", "minimum": 10}}}


async def _products(client: httpx.AsyncClient, admin: dict[str, str], n: int) -> list[str]:
    ids = []
    for i in range(n):
        body = {"name": f"p{i}", "price": i, **({"sku": f"SKU-{i:03d}"} if i % 2 else {})}
        r = await client.post("/api/v1/products", json=body, headers=admin)
        assert r.status_code == 201, r.text
        ids.append(r.json()["_id"])
    return ids


async def test_the_current_schema_fits_what_was_written_through_it(client, admin, lane):
    await _products(client, admin, 3)
    r = await client.post(CHECK, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"checked": 3, "invalid": 0, "entities": [], "next": None}


async def test_a_candidate_lists_each_failing_entity_with_the_messages_of_a_write(client, admin, lane):
    ids = await _products(client, admin, 12)
    before = (await client.get("/api/v1/products", headers=admin)).json()
    r = await client.post(CHECK, json=STRICTER, headers=admin)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["checked"] == 12 and report["next"] is None
    # even ones have no sku; every price under 10 fails the new minimum
    failing = {i for n, i in enumerate(ids) if n % 2 == 0 or n < 10}
    assert report["invalid"] == len(failing)
    assert [e["_id"] for e in report["entities"]] == [i for i in ids if i in failing]
    first = report["entities"][0]["fields"]
    assert set(first) == {"sku", "price"}
    # the same messages a write's 400 gives
    refused = await client.post("/api/v1/products", json={"name": "x", "price": 1}, headers=admin)
    assert refused.status_code == 201
    strict_write = await client.put(f"/api/v1/products/{refused.json()['_id']}", json={"name": "x", "price": -1},
                                    headers=admin)
    candidate = {**PRODUCTS, "properties": {**PRODUCTS["properties"], "price": {"type": "number", "minimum": 2}}}
    checked = (await client.post(CHECK, json=candidate, headers=admin)).json()["entities"]
    assert strict_write.json()["fields"]["price"].replace("0", "2") == checked[-1]["fields"]["price"]
    # nothing changed
    after = (await client.get("/api/v1/products", headers=admin)).json()
    assert after[:12] == before[:12]


async def test_paging_with_limit_and_after_covers_every_entity_once(client, admin, lane):
    ids = await _products(client, admin, 7)
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": "3", **({"after": after} if after else {})}
        r = await client.post(CHECK, json=STRICTER, params=params, headers=admin)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert page["checked"] <= 3
        seen += [e["_id"] for e in page["entities"]]
        after = page["next"]
        if after is None:
            break
    assert pages == 3
    assert seen == ids  # every one fails STRICTER (price < 10), each listed once, in order


@pytest.mark.parametrize(("body", "problem"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "schema must be a JSON object"),
    (json.dumps({"type": "array"}).encode(), 'schema must have "type": "object"'),
    (json.dumps({"type": "object", "properties": {"a": {"type": "string", "x-read": ["nobody"]},
                                                  "_b": {"type": "string"}}}).encode(), "unknown rules"),
    (json.dumps({"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}}).encode(), "does not resolve"),
])
async def test_a_candidate_that_is_not_a_schema_file_is_400_with_every_problem(client, admin, lane, body, problem):
    r = await client.post(CHECK, content=body, headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["tags"] == ["error_validation"]
    assert any(problem in message for message in answer["fields"].values()), answer
    if b"_b" in body:
        assert len(answer["fields"]) == 2  # both problems, not only the first


async def test_a_store_file_with_problems_of_every_kind_is_400_listing_each(client, admin, lane):
    candidate = {"type": "object", "x-acl": {"read": ["someone"]}, "x-indexes": "bad",
                 "properties": {"a": {"type": "string", "x-write": ["nobody"]}, "b": {"type": "nope"}}}
    r = await client.post(CHECK, json=candidate, headers=admin)
    assert r.status_code == 400, r.text
    problems = list(r.json()["fields"].values())
    assert len(problems) == 4, problems
    for expected in ("not a valid JSON Schema", "x-acl.read: unknown rules ['someone']", "x-indexes must be a list",
                     "property 'a': x-write: unknown rules ['nobody']"):
        assert any(expected in p for p in problems), (expected, problems)
    # nothing was checked, nothing changed: the current schema still holds
    assert (await client.post(CHECK, headers=admin)).json()["invalid"] == 0


async def test_who_may_check_and_bad_parameters(client, admin, users, lane):
    _, user = await users.user("someone")
    assert (await client.post(CHECK, headers=user)).status_code == 403
    assert (await client.post(CHECK)).status_code == 401
    assert (await client.post("/api/v1/_schemas/nothing/_check", headers=admin)).status_code == 404
    assert (await client.put(CHECK, headers=admin)).status_code == 405
    for params in ({"limit": "0"}, {"limit": "100001"}, {"after": "zz"}, {"other": "1"}):
        assert (await client.post(CHECK, params=params, headers=admin)).status_code == 400, params
    r = await client.post(CHECK, content=b"{}", headers={**admin, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_check_schemas_data_reports_failing_entities_and_exits_1(wire_db, tmp_path):
    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir()
    (schema_dir / "things.json").write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    import pymongo
    from bson import ObjectId
    with pymongo.MongoClient(wire_db.uri) as mongo:
        bad = ObjectId()
        mongo[wire_db.name]["things"].insert_many([{"_id": ObjectId(), "n": 1}, {"_id": bad, "n": "one"}])
    env = {"PATH": "/usr/bin:/bin", **wire_db.env, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    run = subprocess.run([sys.executable, "-m", "storeengine", "check-schemas", "--data", str(schema_dir)],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"things/{bad}: n: " in run.stdout
    assert "things: 1 of 2 entities fail its schema" in run.stdout
    with pymongo.MongoClient(wire_db.uri) as mongo:
        mongo[wire_db.name]["things"].update_one({"_id": bad}, {"$set": {"n": 2}})
    run = subprocess.run([sys.executable, "-m", "storeengine", "check-schemas", "--data", str(schema_dir)],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


async def _cached(client: httpx.AsyncClient, admin: dict[str, str], expected_invalid: int) -> dict:
    """The background report once it is done and counts `expected_invalid` failures (10 s at most)."""
    for _ in range(200):
        r = await client.get(CHECK, headers=admin)
        assert r.status_code == 200, r.text
        report = r.json()
        if report["state"] == "done" and report["invalid"] == expected_invalid:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"the background check did not report {expected_invalid} failures: {report}")


async def test_each_reload_is_checked_in_the_background_and_its_report_cached(client, admin, schema_dir, lane):
    first = await _cached(client, admin, 0)  # checked when the server loaded the file: an empty store
    assert first["checked"] == 0 and first["entities"] == [] and first["error"] is None
    ids = await _products(client, admin, 12)
    assert (await client.get(CHECK, headers=admin)).json() == first  # cached until the next load
    (schema_dir / "products.json").write_text(json.dumps(STRICTER))
    report = await _cached(client, admin, 11)  # all but the last: odd ones with price >= 10
    assert report["checked"] == 12 and report["finishedAt"] >= report["startedAt"] > first["finishedAt"]
    # the same entities and messages as a dry run of that schema
    dry = (await client.post(CHECK, headers=admin)).json()
    assert report["entities"] == dry["entities"] and [e["_id"] for e in dry["entities"]] == ids[:11]
    # a write after the check does not change the report until the next reload
    await client.delete(f"/api/v1/products/{ids[0]}", headers=admin)
    assert (await client.get(CHECK, headers=admin)).json() == report
    (schema_dir / "products.json").write_text(json.dumps(PRODUCTS))
    assert (await _cached(client, admin, 0))["checked"] == 11


async def test_the_cached_report_is_for_admins_and_file_stores(client, admin, users, lane):
    _, user = await users.user("someone")
    assert (await client.get(CHECK, headers=user)).status_code == 403
    assert (await client.get("/api/v1/_schemas/users/_check", headers=admin)).status_code == 404
    assert (await client.get("/api/v1/_schemas/nothing/_check", headers=admin)).status_code == 404
    assert (await client.get(CHECK, params={"limit": "1"}, headers=admin)).status_code == 400


async def test_other_methods_are_405_naming_the_served_ones(client, admin, lane):
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
        r = await client.request(method, CHECK, headers=admin)
        assert r.status_code == 405, (method, r.text)
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}, (method, r.headers["allow"])
    assert (await client.put(CHECK)).status_code == 401  # after authentication, as everywhere
