"""Every bad input gets the error envelope of API.md section 2 and changes nothing (sections 1, 2, 6)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

ENVELOPE = {"success", "code", "message", "tags"}
TAGS = {400: "error_bad_request", 404: "error_not_found", 405: "error_method_not_allowed",
        409: "error_conflict", 412: "error_precondition_failed", 413: "error_payload_too_large",
        415: "error_unsupported_media_type"}
JSON = {"Content-Type": "application/json"}
MISSING_ID = "0123456789abcdef01234567"
LIMIT = 1024 * 1024  # STORE_MAX_BODY_BYTES default


def assert_error(r: httpx.Response, status: int, *, validation: bool | None = None) -> dict[str, Any]:
    """The envelope, with the tag of its status; `fields` (and then `error_validation`) only for validation."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()
    assert err["success"] is False and err["code"] == str(status)
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in r.text
    has_fields = "fields" in err
    if validation is not None:
        assert has_fields is validation, err
    assert set(err) == ENVELOPE | ({"fields"} if has_fields else set())
    if has_fields:
        assert status == 400 and err["tags"][0] == "error_validation"
        assert err["fields"] and all(isinstance(m, str) and m for m in err["fields"].values())
    else:
        assert err["tags"][0] == TAGS[status]
    return err


def url(store: str = "things", entity_id: str | None = None) -> str:
    return f"/api/v1/{store}" + (f"/{entity_id}" if entity_id else "")


async def snapshot(client: httpx.AsyncClient, admin: dict[str, str], store: str = "things") -> list[dict[str, Any]]:
    r = await client.get(url(store), headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def thing(client, admin) -> dict[str, Any]:
    r = await client.post(url(), json={"name": "kept", "count": 1, "nested": {"a": 1}}, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


def deep(levels: int) -> dict[str, Any]:
    """A body of `levels` nested objects, the top-level object being level 1 and the innermost
    holding a scalar (a scalar is a value, not a level of nesting). Valid for `things`."""
    inner: dict[str, Any] = {"a": 1}
    for _ in range(levels - 2):
        inner = {"x": inner}
    return {"nested": inner}


async def write(client: httpx.AsyncClient, admin: dict[str, str], method: str, thing: dict[str, Any],
                **kwargs: Any) -> httpx.Response:
    """POST to the store, or PATCH/PUT the existing entity."""
    target = url() if method == "POST" else url("things", thing["_id"])
    return await client.request(method, target, headers={**admin, **kwargs.pop("headers", {})}, **kwargs)


WRITE_METHODS = ["POST", "PATCH", "PUT"]

# --- bodies that are not a clean JSON object -------------------------------------------------

BAD_BODIES = [
    ("malformed", b'{"name": '),
    ("trailing-garbage", b'{"name": "a"} x'),
    ("single-quotes", b"{'name': 'a'}"),
    ("nan", b'{"score": NaN}'),
    ("empty", b""),
    ("array", b'[{"name": "a"}]'),
    ("string", b'"text"'),
    ("number", b"42"),
    ("null", b"null"),
    ("not-utf8", b'{"name": "\xff\xfe"}'),
    ("dollar-top", b'{"$set": {"name": "x"}}'),
    ("dollar-nested", b'{"nested": {"$gt": 1}}'),
    ("dollar-in-array", b'{"tags": [{"$where": "1"}]}'),
    ("dollar-deep", b'{"nested": {"x": {"y": [{"z": {"$ne": 0}}]}}}'),
    ("dotted-top", b'{"nested.a": 1}'),
    ("dotted-nested", b'{"nested": {"a.b": 1}}'),
    ("dotted-in-array", b'{"tags": [[{"a.b": 1}]]}'),
    ("too-deep-33", json.dumps(deep(33)).encode()),
    ("too-deep-200", json.dumps(deep(200)).encode()),
    ("too-deep-arrays", b'{"tags": ' + b"[" * 40 + b"]" * 40 + b"}"),
    ("very-deep-arrays", b'{"tags": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
]


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("raw", [b[1] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_are_400_and_change_nothing(client, admin, thing, method, raw):
    r = await write(client, admin, method, thing, content=raw, headers=JSON)
    assert_error(r, 400)
    assert await snapshot(client, admin) == [thing]


@pytest.mark.parametrize("method", WRITE_METHODS)
async def test_nesting_of_exactly_32_levels_is_accepted(client, admin, thing, method):
    r = await write(client, admin, method, thing, json=deep(32))
    assert r.status_code in (200, 201), r.text
    expected = {**thing["nested"], **deep(32)["nested"]} if method == "PATCH" else deep(32)["nested"]
    assert r.json()["nested"] == expected


# --- wrong types: every failing field is named ----------------------------------------------

def case(store: str, body: dict[str, Any], fields: set[str], name: str) -> Any:
    return pytest.param(store, body, fields, id=name)


INVALID = [
    case("things", {"name": 1, "count": "x", "score": "y", "flag": "no", "tags": "a", "nested": {"a": "z", "b": 2}},
         {"name", "count", "score", "flag", "tags", "nested.a", "nested.b"}, "things-types"),
    case("things", {"count": 1.5, "tags": ["a", 2, None]}, {"count", "tags.1", "tags.2"}, "things-integer-and-items"),
    case("things", {"ref": "not-an-id", "when": "yesterday", "pin": "1"}, {"ref", "when", "pin"},
         "things-formats-and-write-only"),
    case("things", {"name": "a", "bogus": 1, "other": True}, {"bogus", "other"}, "things-unknown-properties"),
    case("things", {"nested": [1], "flag": 0}, {"nested", "flag"}, "things-object-and-boolean"),
    case("products", {}, {"name", "price"}, "products-required"),
    case("products", {"name": "", "price": -1, "stock": 1.5, "sku": "lower case", "active": "yes"},
         {"name", "price", "stock", "sku", "active"}, "products-rules"),
    case("products", {"name": "W", "price": "1", "dimensions": {"width": "w", "depth": 1}},
         {"price", "dimensions.width", "dimensions.depth"}, "products-nested"),
    case("orders", {"product": 5, "quantity": 0, "status": "lost", "deliverBy": "2026-13-40T99:00:00Z"},
         {"product", "quantity", "status", "deliverBy"}, "orders-every-rule"),
    case("orders", {"note": "x" * 2001}, {"product", "quantity", "note"}, "orders-required-and-max-length"),
    case("things", {"name": 1, "access": "nobody"}, {"name", "access"}, "things-body-and-access"),
    case("things", {"group": "not-an-id", "branch": [1], "count": "x"}, {"group", "branch", "count"},
         "things-group-branch-and-body"),
]


@pytest.mark.parametrize("store,body,fields", INVALID)
async def test_post_with_wrong_types_names_every_failing_field(client, admin, store, body, fields):
    r = await client.post(url(store), json=body, headers=admin)
    err = assert_error(r, 400, validation=True)
    assert set(err["fields"]) == fields
    assert await snapshot(client, admin, store) == []


PUT_INVALID = [p for p in INVALID if p.values[0] == "things" and not {"access", "group"} & p.values[1].keys()]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("store,body,fields", PUT_INVALID)
async def test_patch_and_put_with_wrong_types_name_every_failing_field(client, admin, thing, method, store, body,
                                                                       fields):
    r = await write(client, admin, method, thing, json=body)
    err = assert_error(r, 400, validation=True)
    assert set(err["fields"]) == fields
    assert await snapshot(client, admin) == [thing]


# --- system fields ---------------------------------------------------------------------------

SYSTEM_VALUES = {"_id": MISSING_ID, "owner": MISSING_ID, "group": None, "access": [], "branch": [],
                 "createdAt": "2026-11-22T10:04:05.123Z", "updatedAt": "2026-11-22T10:04:05.123Z"}
NOT_IN_POST = ["_id", "owner", "createdAt", "updatedAt"]


@pytest.mark.parametrize("names", [[n] for n in NOT_IN_POST] + [NOT_IN_POST], ids=[*NOT_IN_POST, "all"])
async def test_server_managed_fields_in_a_post_body_are_400(client, admin, names):
    body = {"name": "a", **{n: SYSTEM_VALUES[n] for n in names}}
    r = await client.post(url(), json=body, headers=admin)
    err = assert_error(r, 400, validation=True)
    assert set(err["fields"]) == set(names)
    assert await snapshot(client, admin) == []


async def test_post_with_a_system_field_and_a_wrong_type_names_both(client, admin):
    r = await client.post(url(), json={"_id": MISSING_ID, "count": "x"}, headers=admin)
    err = assert_error(r, 400, validation=True)
    assert set(err["fields"]) == {"_id", "count"}
    assert await snapshot(client, admin) == []


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("names", [[n] for n in SYSTEM_VALUES] + [list(SYSTEM_VALUES)],
                         ids=[*SYSTEM_VALUES, "all"])
async def test_any_system_field_in_patch_or_put_is_400(client, admin, thing, method, names):
    body = {"name": "changed", **{n: SYSTEM_VALUES[n] for n in names}}
    r = await write(client, admin, method, thing, json=body)
    err = assert_error(r, 400, validation=True)
    assert set(err["fields"]) == set(names)
    assert await snapshot(client, admin) == [thing]


# --- size ------------------------------------------------------------------------------------

def body_of_size(size: int) -> bytes:
    """A valid `things` body of exactly `size` bytes."""
    frame = b'{"name": ""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


async def chunks(raw: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start:start + size]


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_is_413_and_changes_nothing(client, admin, thing, method, streamed):
    raw = body_of_size(LIMIT + 1)
    content = chunks(raw) if streamed else raw
    r = await write(client, admin, method, thing, content=content, headers=JSON)
    assert_error(r, 413)
    assert await snapshot(client, admin) == [thing]


async def test_many_small_chunks_over_the_limit_are_413(client, admin):
    # No Content-Length; many small chunks, none large, adding up to more than the limit.
    r = await client.post(url(), content=chunks(body_of_size(3 * LIMIT), 1024), headers={**admin, **JSON})
    assert_error(r, 413)
    assert await snapshot(client, admin) == []


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_of_exactly_the_limit_is_accepted(client, admin, streamed):
    raw = body_of_size(LIMIT)
    r = await client.post(url(), content=chunks(raw) if streamed else raw, headers={**admin, **JSON})
    assert r.status_code == 201, r.text[:300]
    assert len(r.json()["name"]) == LIMIT - len(b'{"name": ""}')


# --- media type ------------------------------------------------------------------------------

CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/xml", "text/json", None]


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("ctype", CONTENT_TYPES, ids=[str(c) for c in CONTENT_TYPES])
async def test_non_json_content_type_is_415_and_changes_nothing(client, admin, thing, method, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = await write(client, admin, method, thing, content=b'{"name": "changed"}', headers=headers)
    assert_error(r, 415)
    assert await snapshot(client, admin) == [thing]


@pytest.mark.parametrize("method,ctype", [(m, "application/json; charset=utf-8") for m in WRITE_METHODS]
                         + [("PATCH", "application/merge-patch+json")])
async def test_json_content_types_are_accepted(client, admin, thing, method, ctype):
    r = await write(client, admin, method, thing, content=b'{"name": "changed"}', headers={"Content-Type": ctype})
    assert r.status_code in (200, 201), r.text
    assert r.json()["name"] == "changed"


# --- 404: unknown store, bad or missing id, unknown route -----------------------------------

ENTITY_CALLS = [("GET", None), ("PATCH", {"name": "x"}), ("PUT", {"name": "x"}), ("DELETE", None)]


@pytest.mark.parametrize("store", ["nosuch", "Things", "_hidden", "things-", "a" * 65])
@pytest.mark.parametrize("method,body", [("GET", None), ("POST", {"name": "x"})])
async def test_unknown_store_is_404(client, admin, store, method, body):
    r = await client.request(method, url(store), json=body, headers=admin)
    assert_error(r, 404)


@pytest.mark.parametrize("method,body", ENTITY_CALLS, ids=[c[0] for c in ENTITY_CALLS])
async def test_entity_calls_on_an_unknown_store_are_404(client, admin, method, body):
    r = await client.request(method, url("nosuch", MISSING_ID), json=body, headers=admin)
    assert_error(r, 404)


BAD_IDS = {"not-hex": "zz" * 12, "short": MISSING_ID[:-1], "long": MISSING_ID + "0", "uppercase": None,
           "spaces": "%20" + MISSING_ID[3:], "empty-ish": "0"}


@pytest.mark.parametrize("method,body", ENTITY_CALLS, ids=[c[0] for c in ENTITY_CALLS])
@pytest.mark.parametrize("kind", BAD_IDS)
async def test_invalid_path_id_is_404_and_changes_nothing(client, admin, thing, method, body, kind):
    entity_id = BAD_IDS[kind] or thing["_id"].upper()
    assert entity_id != thing["_id"]  # (an id without a letter a-f is as likely as 1 in 75,000)
    r = await client.request(method, url("things", entity_id), json=body, headers=admin)
    assert_error(r, 404)
    assert await snapshot(client, admin) == [thing]


@pytest.mark.parametrize("method,body", ENTITY_CALLS, ids=[c[0] for c in ENTITY_CALLS])
async def test_missing_entity_is_404_and_nothing_is_created(client, admin, thing, method, body):
    r = await client.request(method, url("things", MISSING_ID), json=body, headers=admin)
    assert_error(r, 404)
    assert await snapshot(client, admin) == [thing]


@pytest.mark.parametrize("path", ["/nope", "/api/v2/things", "/api/v1", "/api/v1/", "/api/v1/things/{id}/nope",
                                  "/api/v1/things/{id}/acl/more", "/api/v1/auth/nope"])
async def test_unknown_route_is_a_404_envelope(client, admin, thing, path):
    r = await client.get(path.format(id=thing["_id"]), headers=admin)
    assert_error(r, 404)


# --- 405 -------------------------------------------------------------------------------------

WRONG_METHODS = [
    ("DELETE", "/api/v1/things", {"GET", "POST"}),
    ("PUT", "/api/v1/things", {"GET", "POST"}),
    ("PATCH", "/api/v1/things", {"GET", "POST"}),
    ("POST", "/api/v1/things/{id}", {"GET", "PATCH", "PUT", "DELETE"}),
    ("GET", "/api/v1/things/{id}/acl", {"PUT"}),
    ("DELETE", "/healthz", {"GET"}),
]


@pytest.mark.parametrize("method,path,allowed", WRONG_METHODS, ids=[f"{m} {p}" for m, p, _ in WRONG_METHODS])
async def test_wrong_method_is_a_405_envelope_and_changes_nothing(client, admin, thing, method, path, allowed):
    r = await client.request(method, path.format(id=thing["_id"]), headers={**admin, **JSON},
                             content=b'{"name": "x"}' if method in WRITE_METHODS else None)
    assert_error(r, 405)
    assert allowed <= {m.strip() for m in r.headers.get("allow", "").split(",")}
    assert await snapshot(client, admin) == [thing]


async def test_other_methods_on_auth_routes_are_405(client, admin):
    for method, path in (("GET", "/api/v1/auth"), ("GET", "/api/v1/auth/token"), ("PATCH", "/api/v1/auth/me"),
                         ("PUT", "/api/v1/auth/keys"), ("GET", "/api/v1/auth/logout")):
        assert_error(await client.request(method, path, json={}, headers=admin), 405)


# --- validation messages ---------------------------------------------------------------------

async def test_validation_messages_name_the_rule_and_never_echo_values(client, admin):
    r = await client.post(url(), json={"pin": "ab", "name": 12345, "score": "y"}, headers=admin)
    err = assert_error(r, 400, validation=True)
    assert err["fields"]["score"] == "must be a number"
    assert "pin" in err["fields"] and "ab" not in json.dumps(err["fields"]) and "12345" not in r.text
    assert await snapshot(client, admin) == []
