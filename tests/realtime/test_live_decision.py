"""Property: a filtered Socket.IO subscriber (API.md 14) gets, for one write, exactly what
`GET /:store?filter=` says before and after it: `update` (in both), `enter` / `create` (after
only), `leave` / `delete` (before only), nothing (neither). The live fan-out decides by filter
group and access rooms (realtime/live.py), not by store/feed.view (the REST/SSE path, checked by
tests/store/test_feed_decision.py): this checks that path the same way, against a real
`storeengine serve` process on the embedded database, one socket re-subscribing per example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Server, start_server, stop_server
from tests.model.test_matcher import ENTITY, FILTER
from tests.paths import TEST_SCHEMAS
from tests.sockets import GRACE, Api, Listener, bearer, listening
from tests.store.test_feed_decision import OWNERS, SHARES, WRITES, expected, jsonable

EXAMPLES = int(os.environ.get("STORE_PROPERTY_EXAMPLES", "30"))
RANDOM = os.environ.get("STORE_PROPERTY_RANDOM") == "1"


class Live:
    """A real server, an admin, a reader in a group, and the reader's socket, in one event loop."""

    def __init__(self, server: Server) -> None:
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.run(self._start(server))

    async def _start(self, server: Server) -> None:
        self.api = Api(server.url)
        self.stack.push_async_callback(self.api.http.aclose)
        self.admin = await self.api.token()
        self.group = await self.api.group(self.admin, "readers")
        self.someone, _ = await self.api.user(self.admin, "someone")
        self.reader_id, self.reader = await self.api.user(self.admin, "reader", [self.group])
        self.socket: Listener = await self.stack.enter_async_context(listening(server.url, **bearer(self.reader)))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()

    def access(self, share: str) -> list[str]:
        return {"nobody": [], "reader": [self.reader_id], "group": [self.group],
                "someone else": [self.someone]}[share]

    async def listed(self, flt: str, entity_id: str) -> bool:
        page = await self.api.call("GET", f"/api/v1/things?limit=10000&filter={quote(flt)}", self.reader)
        return any(e["_id"] == entity_id for e in page)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("live-decision") / "schemas"
    folder.mkdir()
    (folder / "things.json").write_text((TEST_SCHEMAS / "things.json").read_text())
    server = start_server(folder, folder.parent / "server.log")
    harness = Live(server)
    yield harness
    harness.close()
    stop_server(server)


async def _check(h: Live, before: dict[str, Any], after: dict[str, Any], raw: dict[str, Any], write: str,
                 owner: str, shared: str, shares: str) -> None:
    """Subscribe, create (its own decision: `create` or nothing), then the write's decision."""
    flt = json.dumps(raw)
    who = h.admin if owner == "admin" else h.reader
    assert await h.socket.ack("subscribe", {"store": "things", "filter": raw}) == {"success": True}
    body = {**jsonable(after if write == "create" else before), "access": h.access(shared)}
    entity_id = (await h.api.call("POST", "/api/v1/things", who, body, status=201))["_id"]
    was = await h.listed(flt, entity_id)
    want = [(op, None) for op in expected("create", False, was)]
    path = f"/api/v1/things/{entity_id}"
    if write == "patch":
        await h.api.call("PATCH", path, h.admin, {**{k: None for k in before if k not in after}, **jsonable(after)})
    elif write == "put":
        await h.api.call("PUT", path, h.admin, jsonable(after))
    elif write == "acl":
        await h.api.call("PUT", f"{path}/acl", h.admin, {"access": h.access(shares)})
    elif write == "delete":
        await h.api.call("DELETE", path, h.admin)
    now = write != "delete" and await h.listed(flt, entity_id)
    shown = None if write == "delete" or not now else await h.api.call("GET", path, h.reader)
    if write != "create":
        want += [(op, shown) for op in expected(write, was, now)]
    case = json.dumps({"filter": raw, "write": write, "owner": owner, "shared": shared, "shares": shares,
                       "before": before, "after": after, "listed after the create": was, "listed after": now})
    for op, entity in want:
        event = await h.socket.next()
        assert (event["op"], event["_id"]) == (op, entity_id), (event, case)
        if op == "leave":
            assert event["entity"] is None, case
        elif entity is not None:
            assert event["entity"] == entity, case
    await h.socket.quiet(0 if want else GRACE)  # an event beyond those also shows at the next example


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(before=ENTITY, after=ENTITY, raw=FILTER, write=st.sampled_from(WRITES), owner=st.sampled_from(OWNERS),
       shared=st.sampled_from(SHARES), shares=st.sampled_from(SHARES))
def test_a_filtered_socket_gets_what_the_list_says_before_and_after(
        live: Live, before: dict[str, Any], after: dict[str, Any], raw: dict[str, Any], write: str,
        owner: str, shared: str, shares: str) -> None:
    live.run(_check(live, before, after, raw, write, owner, shared, shares))
