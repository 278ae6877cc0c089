"""Issue 8: each attack that once stalled the server, beat the throttle or gave a 500, now
answered safely, with nothing written. In-process (httpx + ASGITransport)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bson import ObjectId
from bson.errors import InvalidDocument

from storeengine.app import create_app
from storeengine.core.errors import BadRequest
from storeengine.core.formats import utcnow
from storeengine.realtime.transport.sendqueue import BoundedSendQueue
from storeengine.settings import Settings
from storeengine.storage.mongo import guard
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, lifespan

ZERO_ID = "000000000000000000000000"
ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}


def _ctx(app: Any) -> Any:
    return app.other_asgi_app.app.state.ctx


async def _count(client: httpx.AsyncClient, admin: dict[str, str], store: str) -> int:
    r = await client.get(f"/api/v1/{store}", params={"meta": "true"}, headers=admin)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["code"] == str(status)
    return body


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app with settings of the test's choice: `await other(...)`-style factory."""
    apps: list[Any] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update=changes))
        cm = lifespan(app)
        await cm.__aenter__()
        apps.append((app, cm))
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(c)
        return c

    yield make  # type: ignore[misc]
    for c in clients:
        await c.aclose()
    for _, cm in apps:
        await cm.__aexit__(None, None, None)


# --- 1. regex and costly reads --------------------------------------------------------------

async def test_a_catastrophic_regex_is_matched_in_linear_time(client, admin):
    for title in ("a" * 30 + "!", "aaaa"):
        assert (await client.post("/api/v1/notes", json={"title": title}, headers=admin)).status_code == 201
    start = time.perf_counter()
    r = await client.get("/api/v1/notes", params={"filter": json.dumps({"title": {"$regex": "^(a+)+$"}})},
                         headers=admin)
    assert r.status_code == 200 and [n["title"] for n in r.json()] == ["aaaa"]
    assert time.perf_counter() - start < 2.0  # Python's `re` takes ~40 s on 30 characters


@pytest.mark.parametrize("pattern,what", [
    (r"(a)\1", "backreference"), ("a(?=b)", "lookahead"), ("(?<!a)b", "lookbehind"),
    ("(?>a)", "atomic group"), ("a++", "possessive quantifier"),
])
async def test_backtracking_regex_syntax_is_refused_with_the_reason(client, admin, pattern, what):
    r = await client.get("/api/v1/notes", params={"filter": json.dumps({"title": {"$regex": pattern}})},
                         headers=admin)
    body = _error(r, 400)
    assert what in body["message"] and "RE2" in body["message"]


async def test_an_invalid_regex_is_400(client, admin):
    r = await client.get("/api/v1/notes", params={"filter": json.dumps({"title": {"$regex": "["}})}, headers=admin)
    assert "not a valid regular expression" in _error(r, 400)["message"]


async def test_a_read_past_the_query_timeout_is_503(other):
    client = await other(query_timeout_ms=100)
    admin = await _login(client)
    coll = _ctx(client._transport.app).storage.collection("notes")  # type: ignore[attr-defined]
    raw = getattr(coll, "raw", coll)  # MongoDB's driver collection, or the embedded one (both have insert_many)
    now, owner = utcnow(), ObjectId()
    # A costly filter: a regular expression tried on 20,000 bodies of 4,000 characters (RE2 is
    # linear, but that is ~300 ms of matching; a plain page of 10,000 is read within the bound).
    await raw.insert_many([{"_id": ObjectId(), "title": f"n{i}", "body": "ab" * 2000, "owner": owner, "group": None,
                            "access": [], "branch": [], "createdAt": now, "updatedAt": now} for i in range(20_000)])
    r = await client.get("/api/v1/notes", params={"limit": 10000, "filter": '{"body": {"$regex": "[ab]*a[ab]{30}c"}}'},
                         headers=admin)
    assert "too long" in _error(r, 503)["message"]
    assert (await client.get("/healthz")).status_code == 200


async def _login(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


# --- 2. login throttle ----------------------------------------------------------------------

async def _burst(client: httpx.AsyncClient, passwords: list[str], login: str = "victim") -> list[int]:
    rs = await asyncio.gather(*(client.post("/api/v1/auth/token", json={"login": login, "password": p})
                                for p in passwords))
    return [r.status_code for r in rs]


async def test_a_burst_of_parallel_guesses_gets_at_most_5_checked(client, users):
    await users.user("victim", password="right-password-1")
    codes = await _burst(client, [f"wrong-{i}" for i in range(30)])
    assert codes.count(401) <= 5 and codes.count(429) >= 25 and set(codes) <= {401, 429}, codes
    assert await _burst(client, ["right-password-1"]) == [429]


async def test_the_right_password_inside_a_burst_does_not_get_past_the_limit(client, users):
    await users.user("victim", password="right-password-1")
    codes = await _burst(client, [f"wrong-{i}" for i in range(29)] + ["right-password-1"])
    assert codes.count(401) <= 5 and codes[-1] == 429, codes  # sent last: counted 30th


async def test_a_success_within_the_limit_resets_the_count(client, users):
    await users.user("victim", password="right-password-1")
    assert await _burst(client, ["w1", "w2", "w3", "w4"]) == [401] * 4
    assert await _burst(client, ["right-password-1"]) == [200]
    assert await _burst(client, ["w5", "w6", "w7", "w8", "w9"]) == [401] * 5
    assert await _burst(client, ["right-password-1"]) == [429]


# --- 3. trailing newline in ids and dates ---------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE", "HEAD"])
async def test_an_id_with_a_trailing_newline_is_404(client, admin, method):
    r = await client.request(method, f"/api/v1/notes/{ZERO_ID}%0A", json={"title": "x"}, headers=admin)
    assert r.status_code == 404
    if method != "HEAD":
        _error(r, 404)


async def test_acl_and_api_key_ids_with_a_trailing_newline_are_404(client, admin):
    created = (await client.post("/api/v1/notes", json={"title": "x"}, headers=admin)).json()
    _error(await client.put(f"/api/v1/notes/{created['_id']}%0A/acl", json={"access": []}, headers=admin), 404)
    _error(await client.delete(f"/api/v1/auth/keys/{ZERO_ID}%0A", headers=admin), 404)


@pytest.mark.parametrize("body", [
    {**ORDER, "product": ZERO_ID + "\n"}, {**ORDER, "deliverBy": "2026-01-01T00:00Z\n"},
])
async def test_ids_and_dates_with_a_trailing_newline_in_bodies_are_400(client, admin, body):
    _error(await client.post("/api/v1/orders", json=body, headers=admin), 400)
    assert await _count(client, admin, "orders") == 0


@pytest.mark.parametrize("field", ["access", "branch"])
async def test_system_ids_with_a_trailing_newline_are_400(client, admin, field):
    _error(await client.post("/api/v1/notes", json={"title": "x", field: [ZERO_ID + "\n"]}, headers=admin), 400)
    created = (await client.post("/api/v1/notes", json={"title": "x"}, headers=admin)).json()
    r = await client.put(f"/api/v1/notes/{created['_id']}/acl", json={field: [ZERO_ID + "\n"]}, headers=admin)
    _error(r, 400)
    r = await client.put(f"/api/v1/notes/{created['_id']}/acl", json={"owner": ZERO_ID + "\n"}, headers=admin)
    _error(r, 400)
    assert await _count(client, admin, "notes") == 1


@pytest.mark.parametrize("params", [
    {"filter": json.dumps({"_id": ZERO_ID + "\n"})}, {"filter": json.dumps({"owner": ZERO_ID + "\n"})},
    {"product": ZERO_ID + "\n"}, {"from": "2026-01-01T00:00Z\n"}, {"deliverBy": "2026-01-01T00:00\n"},
    {"filter": json.dumps({"deliverBy": {"$gt": "2026-01-01T00:00Z\n"}})},
])
async def test_ids_and_dates_with_a_trailing_newline_in_lists_are_400(client, admin, params):
    _error(await client.get("/api/v1/orders", params=params, headers=admin), 400)


# --- 4. dates at the edge of the calendar -----------------------------------------------------

@pytest.mark.parametrize("when", ["9999-12-31T23:59-23:59", "0001-01-01T00:00+00:01"])
async def test_a_zone_that_leaves_the_calendar_is_400_everywhere(client, admin, when):
    _error(await client.post("/api/v1/orders", json={**ORDER, "deliverBy": when}, headers=admin), 400)
    for params in ({"from": when}, {"to": when}, {"begin": when}, {"end": when}, {"deliverBy": when},
                   {"filter": json.dumps({"deliverBy": when})},
                   {"filter": json.dumps({"createdAt": {"$lt": when}})}):
        _error(await client.get("/api/v1/orders", params=params, headers=admin), 400)
    assert await _count(client, admin, "orders") == 0


async def test_the_last_and_first_instants_that_fit_are_accepted(client, admin):
    for when, stored in (("9999-12-31T23:59Z", "9999-12-31T23:59:00.000Z"),
                         ("0001-01-01T01:00+01:00", "0001-01-01T00:00:00.000Z")):
        r = await client.post("/api/v1/orders", json={**ORDER, "deliverBy": when}, headers=admin)
        assert r.status_code == 201 and r.json()["deliverBy"] == stored


async def test_an_unencoded_plus_in_a_date_parameter_says_to_write_2b(client, admin):
    r = await client.get("/api/v1/orders?from=2026-01-01T00:00+01:00", headers=admin)
    assert "%2B" in _error(r, 400)["message"]
    r = await client.get("/api/v1/orders?deliverBy=2026-01-01T00:00+01:00", headers=admin)
    assert "%2B" in _error(r, 400)["message"]
    assert (await client.get("/api/v1/orders?from=2026-01-01T00:00%2B01:00", headers=admin)).status_code == 200


# --- 5. integers outside signed 64 bits -----------------------------------------------------

BIG = [2**63, 2**64 - 1, 2**64, 2**64 + 1, -(2**63) - 1, 10**30]


@pytest.mark.parametrize("value", BIG)
async def test_an_integer_outside_64_bits_in_a_body_is_400_naming_it(client, admin, value):
    raw = b'{"product": "0123456789abcdef01234567", "quantity": 1, "nested": {"deep": [%d]}}' % value
    r = await client.post("/api/v1/orders", content=raw.replace(b"1, ", b"%d, " % value, 1),
                          headers={**admin, "Content-Type": "application/json"})
    assert "quantity" in _error(r, 400)["fields"]
    created = (await client.post("/api/v1/things", json={"count": 1}, headers=admin)).json()
    r = await client.patch(f"/api/v1/things/{created['_id']}", content=b'{"nested": {"a": %d}}' % value,
                           headers={**admin, "Content-Type": "application/json"})
    assert "nested.a" in _error(r, 400)["fields"]
    assert await _count(client, admin, "orders") == 0
    thing = (await client.get(f"/api/v1/things/{created['_id']}", headers=admin)).json()
    assert "nested" not in thing


@pytest.mark.parametrize("value", BIG)
async def test_an_integer_outside_64_bits_in_a_filter_or_parameter_is_400(client, admin, value):
    cases = [({"filter": f'{{"count": {value}}}'}, "filter.count"),
             ({"filter": f'{{"count": {{"$in": [1, {value}]}}}}'}, "filter.count"),
             ({"filter": f'{{"nested": {{"a": {value}}}}}'}, "filter.nested.a"),
             ({"filter": f'{{"tags": {{"$size": {value}}}}}'}, "$size"),
             ({"count": str(value)}, "count"), ({"score": str(value)}, "score")]
    for params, name in cases:
        body = _error(await client.get("/api/v1/things", params=params, headers=admin), 400)
        assert name in json.dumps(body), (params, body)


async def test_the_64_bit_bounds_themselves_are_stored_exactly(client, admin):
    for value in (2**63 - 1, -(2**63)):
        r = await client.post("/api/v1/things", content=b'{"count": %d}' % value,
                              headers={**admin, "Content-Type": "application/json"})
        assert r.status_code == 201 and r.json()["count"] == value
        r = await client.get("/api/v1/things", params={"count": str(value)}, headers=admin)
        assert [t["count"] for t in r.json()] == [value]


@pytest.mark.parametrize("error", [OverflowError("MongoDB can only handle up to 8-byte ints"),
                                   InvalidDocument("cannot encode object"), UnicodeEncodeError("utf-8", "", 0, 1, "")])
async def test_guard_turns_driver_encoding_errors_into_400(error, caplog):
    caplog.set_level(logging.INFO, "storeengine.storage.mongo")
    with pytest.raises(BadRequest) as raised:
        async with guard():
            raise error
    assert raised.value.__cause__ is error and raised.value.status == 400
    assert type(error).__name__ in caplog.text


async def test_a_lone_surrogate_in_a_body_is_400_not_500(client, admin):
    r = await client.post("/api/v1/notes", content=b'{"title": "\\ud800"}',
                          headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400


# --- 6. HEAD, trailing slash, envelopes -------------------------------------------------------

async def test_head_answers_like_get_without_a_body(client, admin):
    created = (await client.post("/api/v1/notes", json={"title": "x"}, headers=admin)).json()
    for path in (f"/api/v1/notes/{created['_id']}", "/api/v1/notes", "/healthz", "/api/v1/auth/keys"):
        get, head = await client.get(path, headers=admin), await client.head(path, headers=admin)
        assert head.status_code == get.status_code == 200 and head.content == b""
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == get.headers.get(name), name
    assert await _count(client, admin, "notes") == 1


async def test_a_trailing_slash_is_the_same_resource(client, admin):
    r = await client.post("/api/v1/notes/", json={"title": "x"}, headers=admin)
    assert r.status_code == 201
    note = r.json()
    r = await client.get(f"/api/v1/notes/{note['_id']}/", headers=admin)
    assert r.status_code == 200 and r.json() == note
    assert [n["_id"] for n in (await client.get("/api/v1/notes/", headers=admin)).json()] == [note["_id"]]
    assert (await client.get("/healthz/")).status_code == 200
    assert (await client.patch(f"/api/v1/notes/{note['_id']}/", json={"title": "y"}, headers=admin)).status_code == 200


async def test_unknown_paths_and_methods_use_the_envelope(client, admin):
    _error(await client.get("/nowhere", headers=admin), 404)
    _error(await client.delete("/api/v1/notes", headers=admin), 405)
    _error(await client.post("/healthz"), 405)


async def test_cors_refusals_and_413_use_the_envelope(other):
    client = await other(allowed_origins=("https://app.example",), max_body_bytes=2048)
    r = await client.options("/api/v1/notes", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    body = _error(r, 400)
    assert "https://evil.example" in body["message"] and "STORE_ALLOWED_ORIGINS" in body["message"]
    ok = await client.options("/api/v1/notes", headers={"Origin": "https://app.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert ok.status_code == 200
    admin = await _login(client)
    for extra in ({}, {"Transfer-Encoding": "chunked"}):
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"title": "' + b"x" * 4096 + b'"}'
        content: Any = chunks() if extra else b'{"title": "' + b"x" * 4096 + b'"}'
        r = await client.post("/api/v1/notes", content=content,
                              headers={**admin, "Origin": "https://app.example", "Content-Type": "application/json"})
        _error(r, 413)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert await _count(client, admin, "notes") == 0


async def test_the_cross_origin_403_names_the_origin_and_the_setting(client, admin):
    r = await client.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    client.cookies.set("sid", r.cookies["sid"])
    r = await client.post("/api/v1/notes", json={"title": "x"}, headers={"Origin": "https://evil.example"})
    message = _error(r, 403)["message"]
    assert "https://evil.example" in message and "STORE_ALLOWED_ORIGINS" in message
    assert await _count(client, admin, "notes") == 0


async def test_token_lifetime_is_exact_in_ms(client, settings):
    for _ in range(3):
        r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        body = r.json()
        assert body["expiresAt"] - body["issuedAt"] == settings.token_ttl_seconds * 1000
        await asyncio.sleep(0.37)


# --- operators where the embedded database differed from MongoDB ----------------------------

@pytest.mark.parametrize("query,expected", [
    ({"tags": {"$all": []}}, []), ({"tags": {"$in": []}}, []), ({"name": {"$size": 1}}, []),
    ({"tags": {"$size": 1}}, ["one"]), ({"tags": {"$size": 0}}, ["none"]),
    ({"tags": {"$not": {"$all": []}}}, ["one", "two", "none", "missing"]),
    ({"tags": {"$all": ["a"]}}, ["one", "two"]),
])
async def test_operators_behave_as_on_mongodb(client, admin, query, expected):
    for name, tags in (("one", ["a"]), ("two", ["a", "b"]), ("none", []), ("missing", None)):
        body = {"name": name} if tags is None else {"name": name, "tags": tags}
        assert (await client.post("/api/v1/things", json=body, headers=admin)).status_code == 201
    r = await client.get("/api/v1/things", params={"filter": json.dumps(query)}, headers=admin)
    assert r.status_code == 200 and [t["name"] for t in r.json()] == expected


# --- Socket.IO: a client that stops reading -------------------------------------------------

class _Pkt:
    def __init__(self, data: str) -> None:
        self.data = data


async def test_the_send_queue_of_a_client_that_stops_reading_is_bounded():
    overflowed: list[BoundedSendQueue] = []
    queue = BoundedSendQueue(overflowed.append, max_packets=100, max_bytes=50_000)
    for _ in range(10_000):
        await queue.put(_Pkt("x" * 1000))
        assert queue.qsize() <= 100 and queue.queued_bytes <= 50_000
    assert overflowed == [queue] and queue.qsize() == 1 and queue.get_nowait() is None
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)  # close(wait=True) would not hang on it


async def test_a_reading_client_is_never_cut_off():
    overflowed: list[BoundedSendQueue] = []
    queue = BoundedSendQueue(overflowed.append, max_packets=100, max_bytes=50_000)
    for _ in range(10_000):
        await queue.put(_Pkt("x" * 1000))
        assert (await queue.get()).data
        queue.task_done()
    assert overflowed == [] and queue.queued_bytes == 0




# --- schema patterns: `$` is the end of the string (ECMA-262), not "before a final newline" --

@pytest.mark.parametrize("store,body,field", [
    ("products", {"name": "p", "price": 1, "sku": "ABC\n"}, "sku"),
    ("users", {"login": "bob\n", "password": "password-123"}, "login"),
])
async def test_a_schema_pattern_does_not_accept_a_trailing_newline(client, admin, store, body, field):
    before = await _count(client, admin, store)
    assert field in _error(await client.post(f"/api/v1/{store}", json=body, headers=admin), 400)["fields"]
    assert await _count(client, admin, store) == before
    body[field] = body[field].rstrip("\n")
    assert (await client.post(f"/api/v1/{store}", json=body, headers=admin)).status_code == 201
