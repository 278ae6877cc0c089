"""Property: a filtered subscriber's view of one write (API.md 14: `update` / `enter` / `leave` /
the write's own op / nothing) is what `GET /:store?filter=` says before and after the write.

Hypothesis draws an entity before and after (the `things` schema, as tests/model/test_matcher.py
draws them), a filter of every list operator, who owns the entity and whom it is shared with
before and after, and one write (create, PATCH, PUT, PUT /acl, DELETE). A reader (not admin, in a
group) lists `?filter=F` before and after the write: in both → the write's op (`update`); only
after → `enter` (`create` for a create); only before → `leave` (`delete` for a delete); neither →
nothing. `GET /:store/_changes?filter=F&since=<before the write>` as that reader must show exactly
that for the entity, with the entity as the reader reads it (none for `leave`). Runs on the
embedded database and on the wire lane (mongoeco); with its quirks
(tests/wire/test_matcher_wire.py) the list itself would answer otherwise than MongoDB, so on the
wire the filters leave out range operators with an operand of another type or null.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from storeengine.app import create_app
from storeengine.settings import Settings
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, FAST_HASH, lifespan, token_for
from tests.model.test_matcher import ENTITY, FILTER
from tests.paths import TEST_SCHEMAS
from tests.wire.test_matcher_wire import ranges

EXAMPLES = int(os.environ.get("STORE_PROPERTY_EXAMPLES", "40"))
RANDOM = os.environ.get("STORE_PROPERTY_RANDOM") == "1"
WRITES = ["create", "patch", "put", "acl", "delete"]
OWNERS = ["admin", "reader"]
SHARES = ["nobody", "reader", "group", "someone else"]


def jsonable(entity: dict[str, Any]) -> dict[str, Any]:
    """A drawn entity as a request body (it is drawn in JSON form already)."""
    return json.loads(json.dumps(entity))


class Harness:
    """The app in-process on one lane, in an event loop of its own, with an admin and a reader."""

    def __init__(self, settings: Settings, lane: str) -> None:
        self.lane = lane
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.run(self._start(settings))

    async def _start(self, settings: Settings) -> None:
        app = create_app(settings)
        await self.stack.enter_async_context(lifespan(app))
        self.http = await self.stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver"))
        self.admin = await token_for(self.http, ADMIN_LOGIN, ADMIN_PASSWORD)
        self.group = (await self.call("POST", "/api/v1/groups", self.admin, {"name": "readers"}))["_id"]
        self.someone = (await self.call("POST", "/api/v1/users", self.admin,
                                        {"login": "someone", "password": "password-123"}))["_id"]
        self.reader_id = (await self.call("POST", "/api/v1/users", self.admin, {
            "login": "reader", "password": "password-123", "groups": [self.group]}))["_id"]
        self.reader = await token_for(self.http, "reader", "password-123")

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()

    async def call(self, method: str, url: str, headers: dict[str, str], body: Any = None,
                   params: dict[str, str] | None = None) -> Any:
        r = await self.http.request(method, url, json=body, headers=headers, params=params)
        assert r.status_code in (200, 201), (method, url, body, r.status_code, r.text)
        return r.json()

    def access(self, share: str) -> list[str]:
        return {"nobody": [], "reader": [self.reader_id], "group": [self.group],
                "someone else": [self.someone]}[share]

    async def listed(self, flt: str, entity_id: str) -> bool:
        page = await self.call("GET", "/api/v1/things", self.reader, params={"filter": flt, "limit": "10000"})
        return any(e["_id"] == entity_id for e in page)

    async def newest(self) -> str:
        """The feed's newest cursor (the admin sees every change)."""
        since: dict[str, str] = {}
        while True:
            page = await self.call("GET", "/api/v1/things/_changes", self.admin, params={"limit": "10000", **since})
            since = {"since": page["cursor"]}
            if not page["more"]:
                return page["cursor"]


@pytest.fixture(scope="module", params=["embedded", pytest.param("wire", marks=pytest.mark.wire)])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    database: dict[str, Any] = {}
    if request.param == "wire":
        server = request.getfixturevalue("wire_server")
        database = {"mongodb_uri": server.uri, "database": f"decision_{uuid.uuid4().hex[:10]}"}
    schemas = tmp_path_factory.mktemp("decision")
    (schemas / "things.json").write_text((TEST_SCHEMAS / "things.json").read_text())
    harness = Harness(Settings(schema_dir=schemas, secret="test-secret-of-at-least-32-bytes!!",
                               admin_password=ADMIN_PASSWORD, data_dir=":memory:", **FAST_HASH, **database),
                      request.param)
    yield harness
    harness.close()


def expected(write: str, was: bool, now: bool) -> list[str]:
    if was and now:
        return ["update"]
    if now:
        return ["create" if write == "create" else "enter"]
    if was:
        return ["delete" if write == "delete" else "leave"]
    return []


async def _check(h: Harness, before: dict[str, Any], after: dict[str, Any], raw: dict[str, Any], write: str,
                 owner: str, shared: str, shares: str) -> None:
    flt = json.dumps(raw)
    who = h.admin if owner == "admin" else h.reader
    body = {**jsonable(after if write == "create" else before), "access": h.access(shared)}
    if write == "create":
        since, was = await h.newest(), False
        created = await h.call("POST", "/api/v1/things", who, body)
        path = f"/api/v1/things/{created['_id']}"
    else:
        created = await h.call("POST", "/api/v1/things", who, body)
        path = f"/api/v1/things/{created['_id']}"
        since, was = await h.newest(), await h.listed(flt, created["_id"])
        if write == "patch":  # a merge patch: the fields of `before` that `after` lacks are removed
            patch: dict[str, Any] = {k: None for k in before if k not in after}
            await h.call("PATCH", path, h.admin, {**patch, **jsonable(after)})
        elif write == "put":
            await h.call("PUT", path, h.admin, jsonable(after))
        elif write == "acl":
            await h.call("PUT", f"{path}/acl", h.admin, {"access": h.access(shares)})
        else:
            await h.call("DELETE", path, h.admin)
    now = write != "delete" and await h.listed(flt, created["_id"])
    page = await h.call("GET", "/api/v1/things/_changes", h.reader, params={"since": since, "filter": flt})
    mine = [c for c in page["changes"] if c["_id"] == created["_id"]]
    case = {"filter": raw, "write": write, "owner": owner, "shared": shared, "shares": shares,
            "before": before, "after": after, "listed before": was, "listed after": now, "changes": mine}
    shown = json.dumps(case, default=str)
    assert [c["op"] for c in mine] == expected(write, was, now), shown
    if mine and mine[0]["op"] in ("leave", "delete"):
        assert mine[0]["op"] == "delete" or mine[0]["entity"] is None, shown
    elif mine:
        assert mine[0]["entity"] == await h.call("GET", path, h.reader), shown


# The JSON types of each field of `things` (a `ref` or `when` string is an ObjectId or a date once parsed).
OWN_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "count": (int,), "score": (int, float), "flag": (bool,), "ref": (str,), "when": (str,),
    "tags": (str,), "nested.a": (int,), "nested.b": (str,)}


def fair_on_the_wire(raw: dict[str, Any]) -> bool:
    """Every range operand is of its field's own type (mongoeco answers those as MongoDB does)."""
    return all(type(operand) in OWN_TYPES.get(path, ()) for path, operand in ranges(raw))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(before=ENTITY, after=ENTITY, raw=FILTER, write=st.sampled_from(WRITES), owner=st.sampled_from(OWNERS),
       shared=st.sampled_from(SHARES), shares=st.sampled_from(SHARES))
def test_a_filtered_reader_sees_what_the_list_says_before_and_after(
        harness: Harness, before: dict[str, Any], after: dict[str, Any], raw: dict[str, Any], write: str,
        owner: str, shared: str, shares: str) -> None:
    if harness.lane == "wire":
        assume(fair_on_the_wire(raw))
    harness.run(_check(harness, before, after, raw, write, owner, shared, shares))
