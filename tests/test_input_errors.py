"""Every bad input gets the envelope of API.md section 2 and changes nothing."""

from __future__ import annotations

import json

import pytest

TAGS = {400: "error_bad_request", 401: "error_unauthorized", 403: "error_forbidden", 404: "error_not_found",
        405: "error_method_not_allowed", 409: "error_conflict", 412: "error_precondition_failed",
        413: "error_payload_too_large", 415: "error_unsupported_media_type"}


def assert_error(r, status: int, tag: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == str(status)
    assert body["tags"][0] == (tag or TAGS[status])
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.text
    return body


async def count(client, admin, store="things") -> int:
    return len((await client.get(f"/api/v1/{store}", headers=admin)).json())


def nested(depth: int) -> dict:
    doc: dict = {}
    for _ in range(depth - 1):
        doc = {"x": doc}
    return doc


BAD_BODIES = [
    ("malformed", b'{"name": ', 400),
    ("array", b"[1, 2]", 400),
    ("string", b'"text"', 400),
    ("empty", b"", 400),
    ("dollar key", b'{"$set": {"name": "x"}}', 400),
    ("dollar nested", b'{"nested": {"$gt": 1}}', 400),
    ("dotted key", b'{"nested.a": 1}', 400),
    ("dollar in array", b'{"tags": [{"$where": "1"}]}', 400),
    ("too deep", json.dumps({"nested": nested(33)}).encode(), 400),
]


@pytest.mark.parametrize("name,raw,status", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_on_create_change_nothing(client, admin, name, raw, status):
    r = await client.post("/api/v1/things", content=raw, headers={**admin, "Content-Type": "application/json"})
    assert_error(r, status)
    assert await count(client, admin) == 0


@pytest.mark.parametrize("name,raw,status", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_on_patch_and_put_change_nothing(client, admin, name, raw, status):
    doc = (await client.post("/api/v1/notes", json={"title": "t"}, headers=admin)).json()
    url = f"/api/v1/notes/{doc['_id']}"
    for method in ("PATCH", "PUT"):
        r = await client.request(method, url, content=raw, headers={**admin, "Content-Type": "application/json"})
        assert_error(r, status)
    assert (await client.get(url, headers=admin)).json() == doc


async def test_depth_32_is_accepted(client, admin):
    r = await client.post("/api/v1/notes", json={"title": "t", "deep": nested(31)}, headers=admin)
    assert r.status_code == 201, r.text


async def test_validation_lists_every_failing_field(client, admin):
    body = {"name": 5, "count": "x", "score": "y", "flag": 1, "ref": "nope", "when": "yesterday", "extra": 1}
    r = await client.post("/api/v1/things", json=body, headers=admin)
    err = assert_error(r, 400, "error_validation")
    assert set(err["fields"]) == {"name", "count", "score", "flag", "ref", "when", "extra"}
    assert err["fields"]["score"] == "must be a number"
    assert await count(client, admin) == 0


async def test_validation_messages_never_echo_values(client, admin):
    r = await client.post("/api/v1/things", json={"pin": "ab", "name": 12345}, headers=admin)
    err = assert_error(r, 400, "error_validation")
    assert "pin" in err["fields"] and "ab" not in json.dumps(err["fields"]) and "12345" not in r.text


async def test_server_fields_in_create_are_refused_by_name(client, admin):
    body = {"_id": "0123456789abcdef01234567", "owner": None, "createdAt": "x", "updatedAt": "x", "name": "a"}
    err = assert_error(await client.post("/api/v1/things", json=body, headers=admin), 400, "error_validation")
    assert set(err["fields"]) == {"_id", "owner", "createdAt", "updatedAt"}
    assert await count(client, admin) == 0


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_system_fields_in_patch_and_put_are_refused(client, admin, method):
    doc = (await client.post("/api/v1/things", json={"name": "a"}, headers=admin)).json()
    url = f"/api/v1/things/{doc['_id']}"
    body = {"group": None, "access": [], "branch": [], "updatedAt": "x", "name": "b"}
    err = assert_error(await client.request(method, url, json=body, headers=admin), 400, "error_validation")
    assert set(err["fields"]) == {"group", "access", "branch", "updatedAt"}
    assert (await client.get(url, headers=admin)).json() == doc


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_non_json_writes_are_415(client, admin, ctype):
    doc = (await client.post("/api/v1/things", json={"name": "a"}, headers=admin)).json()
    headers = {**admin, **({"Content-Type": ctype} if ctype else {})}
    for method, url in (("POST", "/api/v1/things"), ("PATCH", f"/api/v1/things/{doc['_id']}"),
                        ("PUT", f"/api/v1/things/{doc['_id']}")):
        assert_error(await client.request(method, url, content=b'{"name": "b"}', headers=headers), 415)
    assert (await client.get(f"/api/v1/things/{doc['_id']}", headers=admin)).json() == doc
    assert await count(client, admin) == 1


async def test_oversized_body_is_413(client, admin):
    big = json.dumps({"title": "t", "body": "x" * (1024 * 1024)}).encode()
    r = await client.post("/api/v1/notes", content=big, headers={**admin, "Content-Type": "application/json"})
    assert_error(r, 413)

    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = await client.post("/api/v1/notes", content=chunks(), headers={**admin, "Content-Type": "application/json"})
    assert_error(r, 413)
    assert await count(client, admin, "notes") == 0


@pytest.mark.parametrize("path", [
    "/api/v1/nosuchstore", "/api/v1/nosuchstore/0123456789abcdef01234567",
    "/api/v1/things/123", "/api/v1/things/0123456789ABCDEF01234567", "/api/v1/things/zz23456789abcdef01234567",
    "/api/v1/things/0123456789abcdef01234567", "/api/v1/things/0123456789abcdef0123456789",
    "/nope", "/api/v1/things/0123456789abcdef01234567/extra/more",
])
async def test_unknown_things_are_404(client, admin, path):
    assert_error(await client.get(path, headers=admin), 404)


async def test_bad_ids_are_404_for_every_verb(client, admin):
    for method in ("PATCH", "PUT", "DELETE"):
        r = await client.request(method, "/api/v1/things/not-an-id", json={}, headers=admin)
        assert_error(r, 404)


async def test_wrong_method_is_405(client, admin):
    assert_error(await client.delete("/api/v1/things", headers=admin), 405)
    assert_error(await client.post("/api/v1/things/0123456789abcdef01234567", json={}, headers=admin), 405)


async def test_other_methods_on_auth_routes_are_405(client, admin):
    for method, path in (("GET", "/api/v1/auth"), ("GET", "/api/v1/auth/token"), ("PATCH", "/api/v1/auth/me"),
                         ("PUT", "/api/v1/auth/keys"), ("GET", "/api/v1/auth/logout")):
        assert_error(await client.request(method, path, json={}, headers=admin), 405)
