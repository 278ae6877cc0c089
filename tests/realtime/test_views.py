"""Events per view (API.md 15): one change, subscribers with different property rights, each
gets its own view of the entity (rooms per view; real server, real Socket.IO clients)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Server, start_server, stop_server
from tests.http.test_property_rules import STAFF
from tests.sockets import Api, bearer, listening


@pytest.fixture
def server(schema_dir: Path, tmp_path: Path):  # shadows conftest's: the schemas with a staff store
    (schema_dir / "staff.json").write_text(json.dumps(STAFF))
    srv = start_server(schema_dir, tmp_path / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture
async def api(server: Server):
    client = Api(server.url)
    yield client
    await client.http.aclose()


async def test_each_subscriber_gets_its_own_view(api: Api) -> None:
    admin = await api.token()
    hr_id = (await api.call("POST", "/api/v1/users", admin, {"login": "hr", "password": "password-123",
                                                             "roles": ["hr"]}, status=201))["_id"]
    assert hr_id
    hr = await api.token("hr", "password-123")
    _, owner = await api.user(admin, "owner")
    _, other = await api.user(admin, "other")
    async with listening(api.url, "staff", **bearer(hr)) as h, listening(api.url, "staff", **bearer(owner)) as o, \
            listening(api.url, "staff", **bearer(other)) as x, listening(api.url, "staff", **bearer(admin)) as a:
        created = await api.call("POST", "/api/v1/staff", owner, {"name": "ann", "notes": "n"}, status=201)
        await api.call("PATCH", f"/api/v1/staff/{created['_id']}", hr, {"salary": 7})
        views = {}
        for name, listener in (("hr", h), ("owner", o), ("other", x), ("admin", a)):
            first, second = await listener.next(), await listener.next()
            assert (first["op"], second["op"]) == ("create", "update")
            views[name] = second["entity"]
        assert views["hr"]["salary"] == 7 and "notes" not in views["hr"]
        assert "salary" not in views["owner"] and views["owner"]["notes"] == "n"
        assert "salary" not in views["other"] and "notes" not in views["other"]
        assert views["admin"]["salary"] == 7 and views["admin"]["notes"] == "n"
        await x.quiet()
