"""What one client could do to the others, in-process (the hardening round of API.md 2, 7, 10):

Deep nesting anywhere → 400 with one log line at most; a `since` beyond the newest change → 400
(and no reader's request changes what other readers get); `_versions` pages; the last active
admin stays; properties named like list parameters; numbers out of float range; the pages'
security headers. Streams and Socket.IO against real servers: test_fair_service.py, test_changes.py.
"""

from __future__ import annotations

import asyncio
import html.parser
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from storeengine.core.formats import utcnow
from storeengine.store.feed import cursor, parse_cursor
from tests.conftest import ADMIN_LOGIN, Users

JOURNAL = {"type": "object", "properties": {"n": {"type": "integer"}, "text": {"type": "string"}},
           "x-history": True, "x-acl": {"read": ["authenticated"]}}
# The list parameters of API.md 7, and those of sections 13 and 14 (expand, after, via).
PARAMETERS = ("offset", "limit", "only", "meta", "from", "to", "begin", "end", "filter", "sort", "expand", "after",
              "via")
CLASH = {"type": "object", "properties": {**{name: {"type": "string"} for name in PARAMETERS},
                                          "limit": {"type": "integer"}, "meta": {"type": "boolean"},
                                          "price": {"type": "number"}},
         "x-acl": {"read": ["authenticated"]}}
DEEP = 330  # past Python's recursion limit for a recursive walk (3 frames a level), under orjson's 1024
ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}


@pytest.fixture
def schema_dir(schema_dir: Path) -> Path:  # conftest's folder plus a history store and a clashing one
    (schema_dir / "journal.json").write_text(json.dumps(JOURNAL))
    (schema_dir / "clash.json").write_text(json.dumps(CLASH))
    return schema_dir


def _ctx(app: Any) -> Any:
    return app.other_asgi_app.app.state.ctx


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["code"] == str(status)
    return body


# --- deep nesting ---------------------------------------------------------------------------

def _arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def _objects(depth: int, key: str = "a", leaf: str = "1") -> str:
    return f'{{"{key}": ' * depth + leaf + "}" * depth


def _chain(op: str, depth: int, leaf: str) -> str:
    return f'{{"{op}": ' * depth + leaf + "}" * depth


@pytest.fixture
async def targets(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """Entities to aim at (lists must hold some: the database layer only walks paths of stored ones)."""
    for i in range(3):
        r = await client.post("/api/v1/things", json={"name": f"t{i}", "nested": {"a": i}, "tags": ["x"]},
                              headers=admin)
        assert r.status_code == 201
    thing = r.json()["_id"]
    r = await client.post("/api/v1/journal", json={"n": 1}, headers=admin)
    return {"thing": thing, "journal": r.json()["_id"]}


def _bodies(targets: dict[str, str], deep: str) -> list[tuple[str, str, str, bool]]:
    """(method, path, body, authenticated) for every route that reads a JSON body."""
    thing, journal = targets["thing"], targets["journal"]
    return [
        ("POST", "/api/v1/auth", f'{{"login": {deep}, "password": "x"}}', False),
        ("POST", "/api/v1/auth/token", f'{{"login": {deep}, "password": "x"}}', False),
        ("POST", "/api/v1/auth/refresh", f'{{"refreshToken": {deep}}}', False),
        ("POST", "/api/v1/auth/keys", f'{{"name": {deep}}}', True),
        ("POST", "/api/v1/things", f'{{"nested": {deep}}}', True),
        ("PATCH", f"/api/v1/things/{thing}", f'{{"nested": {deep}}}', True),
        ("PUT", f"/api/v1/things/{thing}", f'{{"nested": {deep}}}', True),
        ("PUT", f"/api/v1/things/{thing}/acl", f'{{"access": {deep}}}', True),
        ("POST", f"/api/v1/journal/{journal}/_restore", f'{{"version": {deep}}}', True),
        ("POST", "/api/v1/users", f'{{"login": "u", "password": "password-1", "groups": {deep}}}', True),
    ]


def _one_line_at_most(caplog: pytest.LogCaptureFixture, what: Any) -> None:
    """What the server logged for one refused request (the test's own httpx client aside)."""
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "".join(caplog.handler.format(r) for r in records)
    assert len(records) <= 1 and not any(r.exc_info for r in records), (what, text[:500])
    assert len(text) < 1000, what
    caplog.clear()


@pytest.mark.parametrize("depth", [33, DEEP, 1000, 5000])
async def test_deep_json_bodies_are_400_on_every_route_with_one_log_line_at_most(
        client: httpx.AsyncClient, admin: dict[str, str], targets: dict[str, str], depth: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for deep in (_arrays(depth), _objects(depth)):
        for method, path, body, authed in _bodies(targets, deep):
            headers = {"Content-Type": "application/json", **(admin if authed else {})}
            r = await client.request(method, path, content=body.encode(), headers=headers)
            assert "deeper than 32" in _error(r, 400)["message"], (method, path)
            _one_line_at_most(caplog, (method, path))
    r = await client.get("/api/v1/things", params={"meta": "true"}, headers=admin)
    assert r.json()["total"] == 3  # nothing was written


def _filters(depth: int) -> list[str]:
    return [
        _objects(depth).replace('{"a": ', '{"nested": ', 1),  # a nested object value
        '{"count": ' + _chain("$not", depth, '{"$eq": 1}') + "}",
        '{"tags": ' + _chain("$elemMatch", depth, '{"$eq": "x"}') + "}",
        '{"$and": [' * depth + '{"count": 1}' + "]}" * depth,
        '{"tags": ' + _arrays(depth) + "}",
    ]


@pytest.mark.parametrize("depth", [33, DEEP, 1000])  # (deeper ones pass orjson's limit, as bodies do above)
async def test_deep_filters_are_400_with_one_log_line_at_most(
        client: httpx.AsyncClient, admin: dict[str, str], targets: dict[str, str], depth: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for flt in _filters(depth):
        r = await client.get("/api/v1/things", params={"filter": flt}, headers=admin)
        assert "deeper than 32" in _error(r, 400)["message"], flt[:60]
        _one_line_at_most(caplog, flt[:60])


@pytest.mark.parametrize("segments", [33, 1000, 20000])
async def test_dotted_paths_of_more_than_32_segments_are_400_with_one_log_line_at_most(
        client: httpx.AsyncClient, admin: dict[str, str], targets: dict[str, str], segments: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = ".".join(["nested"] + ["a"] * (segments - 1))
    half = ".".join(["b"] * (segments // 2 + 1))
    for params in ({"only": path}, {"sort": path}, {"sort": "-" + path}, {"only": f"name,{path}"},
                   {"filter": json.dumps({path: 1})}, {"filter": json.dumps({path: {"$exists": True}})},
                   {"filter": json.dumps({"tags": {"$elemMatch": {half: {"$elemMatch": {half: 1}}}}})}):
        r = await client.get("/api/v1/things", params=params, headers=admin)
        assert "deeper than 32" in _error(r, 400)["message"], params
        _one_line_at_most(caplog, params)


async def test_paths_and_nesting_up_to_32_levels_still_work(client: httpx.AsyncClient, admin: dict[str, str],
                                                            targets: dict[str, str]) -> None:
    path = ".".join(["nested"] + ["x"] * 31)  # `x`: a member `nested` does not declare, so may be anything
    for params in ({"only": path}, {"sort": path}, {"filter": json.dumps({path: {"$exists": False}})},
                   {"filter": '{"nested": {"$ne": ' + _objects(29, "z") + "}}"},
                   {"filter": '{"tags": ' + _chain("$elemMatch", 8, '{"$eq": "x"}') + "}"}):
        r = await client.get("/api/v1/things", params=params, headers=admin)
        assert r.status_code == 200, (params, r.text)
    # The embedded database compiles each $elemMatch to a nested SQL subquery, and SQLite's parser
    # stops at about 9 of them: deeper chains are a 400 that says so, never a 500.
    deep = '{"tags": ' + _chain("$elemMatch", 29, '{"$eq": "x"}') + "}"
    r = await client.get("/api/v1/things", params={"filter": deep}, headers=admin)
    assert "too complex" in _error(r, 400)["message"]
    body = '{"nested": ' + _objects(31, "z") + "}"
    r = await client.patch(f"/api/v1/things/{targets['thing']}", content=body.encode(),
                           headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


# --- numbers out of float range ----------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1e400", "-1e400", "1e309", "1.0e999", "-4e308"])
async def test_a_number_parameter_out_of_float_range_is_400_not_infinity(client: httpx.AsyncClient,
                                                                         admin: dict[str, str], raw: str) -> None:
    assert (await client.post("/api/v1/things", json={"score": 1.5e308}, headers=admin)).status_code == 201
    assert "range" in _error(await client.get("/api/v1/things", params={"score": raw}, headers=admin), 400)["message"]
    _error(await client.get("/api/v1/clash", params={"price": raw}, headers=admin), 400)
    _error(await client.get("/api/v1/things", params={"filter": f'{{"score": {raw}}}'}, headers=admin), 400)
    r = await client.get("/api/v1/things", params={"score": "1.5e308"}, headers=admin)
    assert r.status_code == 200 and len(r.json()) == 1


# --- a `since` beyond the newest change -----------------------------------------------------------

async def _newest(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    r = await client.get("/api/v1/orders/_changes", params={"limit": 10000}, headers=admin)
    return str(r.json()["changes"][-1]["seq"])


async def test_a_since_beyond_the_newest_change_is_400_on_rest_sse_and_last_event_id(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for _ in range(2):
        assert (await client.post("/api/v1/orders", json=ORDER, headers=admin)).status_code == 201
    newest = await _newest(client, admin)
    beyond = [cursor("orders", parse_cursor("orders", newest) + n) for n in (1, 10**9)]
    ok = await client.get("/api/v1/orders/_changes", params={"since": newest}, headers=admin)
    assert ok.status_code == 200 and ok.json()["changes"] == []  # the newest itself is fine
    sse = {**admin, "Accept": "text/event-stream"}
    for since in beyond:
        r = await client.get("/api/v1/orders/_changes", params={"since": since}, headers=admin)
        assert "beyond" in _error(r, 400)["message"]
        # SSE: refused before the stream starts (it used to wait for ever): a timeout here fails
        r = await asyncio.wait_for(client.get("/api/v1/orders/_changes", params={"since": since}, headers=sse), 10)
        assert "beyond" in _error(r, 400)["message"]
        r = await asyncio.wait_for(client.get("/api/v1/orders/_changes", headers={**sse, "Last-Event-ID": since}), 10)
        assert "beyond" in _error(r, 400)["message"]


async def test_a_cursor_beyond_the_newest_change_changes_nothing_for_other_readers(
        client: httpx.AsyncClient, admin: dict[str, str], users: Users) -> None:
    _, other = await users.user("other")
    assert (await client.post("/api/v1/orders", json=ORDER, headers=admin)).status_code == 201
    newest = await _newest(client, admin)
    far = cursor("orders", parse_cursor("orders", newest) + 10**12)
    await client.get("/api/v1/orders/_changes", params={"since": far}, headers=other)
    listed = await client.get("/api/v1/orders", headers=admin)
    assert listed.headers["x-change-cursor"] == newest  # not moved past the feed by someone's cursor
    later = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    r = await client.get("/api/v1/orders/_changes", params={"since": listed.headers["x-change-cursor"]},
                         headers=admin)
    assert [c["_id"] for c in r.json()["changes"]] == [later["_id"]]


# --- _versions paging ---------------------------------------------------------------------

async def _versions(client: httpx.AsyncClient, admin: dict[str, str], entity: str,
                    **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    r = await client.get(f"/api/v1/journal/{entity}/_versions", params=params, headers=admin)
    assert r.status_code == 200, r.text
    return r.json(), r.headers.get("x-next-after")


async def _all_pages(client: httpx.AsyncClient, admin: dict[str, str], entity: str,
                     limit: int) -> tuple[list[dict[str, Any]], list[int]]:
    out: list[dict[str, Any]] = []
    sizes: list[int] = []
    after: str | None = None
    while True:
        page, after = await _versions(client, admin, entity, limit=limit, **({"after": after} if after else {}))
        out += page
        sizes.append(len(page))
        if after is None:
            return out, sizes
        assert after == page[-1]["version"]


async def test_versions_come_in_pages_with_x_next_after(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    entity = (await client.post("/api/v1/journal", json={"n": 0}, headers=admin)).json()["_id"]
    for n in range(1, 25):
        assert (await client.patch(f"/api/v1/journal/{entity}", json={"n": n}, headers=admin)).status_code == 200
    everything, after = await _versions(client, admin, entity)
    assert len(everything) == 25 and after is None
    pages, sizes = await _all_pages(client, admin, entity, 10)
    assert pages == everything and sizes == [10, 10, 5]
    assert [v["entity"]["n"] for v in pages] == list(range(25))


async def test_a_page_never_ends_between_a_write_and_the_delete_that_shares_its_version(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    entity = (await client.post("/api/v1/journal", json={"n": 0}, headers=admin)).json()["_id"]
    for n in (1, 2):
        await client.patch(f"/api/v1/journal/{entity}", json={"n": n}, headers=admin)
    assert (await client.delete(f"/api/v1/journal/{entity}", headers=admin)).status_code == 200
    everything, _ = await _versions(client, admin, entity)
    assert [v["op"] for v in everything] == ["create", "update", "update", "delete"]
    assert everything[2]["version"] == everything[3]["version"]
    for limit, sizes in ((1, [1, 1, 2]), (2, [2, 2]), (3, [2, 2]), (4, [4])):
        pages, got = await _all_pages(client, admin, entity, limit)
        assert pages == everything and got == sizes, limit


async def test_the_default_and_largest_page_is_1000(app: Any, client: httpx.AsyncClient,
                                                    admin: dict[str, str]) -> None:
    created = (await client.post("/api/v1/journal", json={"n": 0}, headers=admin)).json()
    entity = ObjectId(created["_id"])
    raw = _ctx(app).storage.collection("_changes")  # the embedded database's bulk insert
    now, base = utcnow(), 10**12
    docs = [{"_id": f"journal:{seq:016x}", "store": "journal", "seq": seq, "op": "update", "id": entity,
             "entity": {**created, "_id": entity, "n": seq}, "before": None, "version": f"{base + seq:x}",
             "at": now, "by": None} for seq in range(10**6, 10**6 + 1204)]
    await raw.insert_many(docs)
    page, after = await _versions(client, admin, created["_id"])
    assert len(page) == 1000 and after == page[-1]["version"] == f"{base + 10**6 + 998:x}"
    rest, after = await _versions(client, admin, created["_id"], after=page[-1]["version"], limit=1000)
    assert len(rest) == 205 and after is None  # the create, then 1,204 updates
    for bad in ("0", "1001", "ten", "²", "-1", ""):
        r = await client.get(f"/api/v1/journal/{created['_id']}/_versions", params={"limit": bad}, headers=admin)
        _error(r, 400)
    for params in ({"after": "nope"}, {"after": "1"}, {"page": "2"}, [("limit", "1"), ("limit", "2")]):
        _error(await client.get(f"/api/v1/journal/{created['_id']}/_versions", params=params, headers=admin), 400)


# --- the last active admin ------------------------------------------------------------------

async def _me(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/api/v1/auth/me", headers=headers)).json()["_id"])


async def _active_admins(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    r = await client.get("/api/v1/users", params={"filter": json.dumps({"roles": "admin", "active": {"$ne": False}})},
                         headers=headers)
    assert r.status_code == 200, r.text
    return [u["login"] for u in r.json()]


async def test_the_last_active_admin_cannot_be_deleted_deactivated_or_demoted(
        client: httpx.AsyncClient, admin: dict[str, str], users: Users) -> None:
    me = f"/api/v1/users/{await _me(client, admin)}"
    for method, body in (("PATCH", {"roles": []}), ("PATCH", {"roles": ["editor"]}), ("PATCH", {"active": False}),
                         ("PUT", {"login": ADMIN_LOGIN, "password": "admin-password-2"}), ("DELETE", None)):
        r = await client.request(method, me, json=body, headers=admin)
        assert "admin" in _error(r, 409)["message"], (method, body)
    sleeper, _ = await users.user("sleeper", roles=["admin"])
    assert (await client.patch(f"/api/v1/users/{sleeper}", json={"active": False}, headers=admin)).status_code == 200
    _error(await client.patch(me, json={"roles": []}, headers=admin), 409)  # an inactive admin does not count
    assert await _active_admins(client, admin) == [ADMIN_LOGIN]
    second, second_headers = await users.user("second", roles=["admin"])
    r = await client.patch(me, json={"roles": ["editor"]}, headers=admin)
    assert r.status_code == 200, r.text
    _error(await client.delete(f"/api/v1/users/{second}", headers=second_headers), 409)
    _error(await client.patch(f"/api/v1/users/{second}", json={"active": False}, headers=second_headers), 409)
    assert await _active_admins(client, second_headers) == ["second"]
    r = await client.patch(f"/api/v1/users/{second}", json={"name": "still an admin"}, headers=second_headers)
    assert r.status_code == 200  # other changes of the last admin are fine


async def test_two_admins_demoting_each_other_at_once_leave_one(app: Any, client: httpx.AsyncClient,
                                                                admin: dict[str, str], users: Users,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = await _me(client, admin)
    second, second_headers = await users.user("second", roles=["admin"])
    users_collection = _ctx(app).storage.collection("users")
    write = users_collection.update_if

    async def slow_write(*args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(0.05)  # both demotions are checked before either is written, unless serialised
        return bool(await write(*args, **kwargs))

    monkeypatch.setattr(users_collection, "update_if", slow_write)
    for _ in range(8):
        answers = await asyncio.gather(
            client.patch(f"/api/v1/users/{second}", json={"roles": []}, headers=admin),
            client.patch(f"/api/v1/users/{first}", json={"roles": []}, headers=second_headers))
        codes = sorted(r.status_code for r in answers)
        assert codes[0] == 200 and codes[1] in (403, 409), [r.text for r in answers]
        survivor, survivor_headers = (first, admin) if answers[0].status_code == 200 else (second, second_headers)
        assert len(await _active_admins(client, survivor_headers)) == 1
        demoted = second if survivor == first else first
        r = await client.patch(f"/api/v1/users/{demoted}", json={"roles": ["admin"]}, headers=survivor_headers)
        assert r.status_code == 200, r.text


# --- properties named like list parameters ----------------------------------------------------

async def test_a_property_named_like_a_parameter_leaves_the_parameter_its_meaning(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for n in (3, 1, 2):
        body = {"limit": n, "meta": n == 1, "sort": f"s{n}", "after": "a", "expand": "e", "via": "v", "price": n}
        assert (await client.post("/api/v1/clash", json=body, headers=admin)).status_code == 201
    assert len((await client.get("/api/v1/clash", params={"limit": "1"}, headers=admin)).json()) == 1
    assert (await client.get("/api/v1/clash", params={"meta": "true"}, headers=admin)).json()["total"] == 3
    r = await client.get("/api/v1/clash", params={"sort": "-limit"}, headers=admin)
    assert [e["limit"] for e in r.json()] == [3, 2, 1]
    for name in ("expand", "after", "via"):  # parameters of later sections: never a property filter
        _error(await client.get("/api/v1/clash", params={name: {"expand": "e", "after": "a", "via": "v"}[name]},
                                headers=admin), 400)
    for flt, expected in (({"limit": 2}, [2]), ({"meta": True}, [1]), ({"after": "a"}, [3, 1, 2])):
        r = await client.get("/api/v1/clash", params={"filter": json.dumps(flt)}, headers=admin)
        assert [e["limit"] for e in r.json()] == expected, flt
    assert [e["limit"] for e in (await client.get("/api/v1/clash", params={"price": "2"}, headers=admin)).json()] == [2]


# --- security headers of the pages --------------------------------------------------------------

class _Inline(html.parser.HTMLParser):
    """Inline scripts, event handlers, javascript: URLs and inline styles of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("inline <style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}={value!r}")


@pytest.mark.parametrize("path", ["/", "/docs", "/console/app.js", "/console/console.css", "/console/docs.js",
                                  "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                                  "/console/missing.js"])
async def test_pages_refuse_framing_sniffing_and_foreign_or_inline_scripts(client: httpx.AsyncClient,
                                                                          path: str) -> None:
    r = await client.get(path)
    assert r.status_code == (404 if "missing" in path else 200)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    policy = {part.split()[0]: part.split()[1:] for part in r.headers["content-security-policy"].split(";")}
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["script-src"] == policy["style-src"] == ["'self'"]  # nothing inline, no eval, no other host
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    if path in ("/", "/docs"):
        parser = _Inline()
        parser.feed(r.text)
        assert parser.found == [], parser.found


async def test_api_answers_are_not_sniffed_either(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for r in (await client.get("/api/v1/orders", headers=admin), await client.get("/api/v1/orders"),
              await client.get("/healthz")):
        assert r.headers["x-content-type-options"] == "nosniff"


# --- a client that leaves mid-body -----------------------------------------------------------

async def test_a_client_that_disconnects_mid_body_costs_one_quiet_line_and_writes_nothing(
        app: Any, client: httpx.AsyncClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = (await client.get("/api/v1/orders", params={"meta": "true"}, headers=admin)).json()["total"]
    events: list[dict[str, Any]] = [{"type": "http.request", "body": b'{"product": "0123', "more_body": True},
                                    {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000"),
               (b"authorization", admin["Authorization"].encode()), (b"host", b"testserver")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/orders", "raw_path": b"/api/v1/orders", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    await app(scope, receive, send)
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in records), \
        "".join(caplog.handler.format(r) for r in records)[:1500]
    after = (await client.get("/api/v1/orders", params={"meta": "true"}, headers=admin)).json()["total"]
    assert after == before
