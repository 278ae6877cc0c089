"""Operations: a real server process, hot reload, and a dead database (API.md 9)."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pymongo.errors
import pytest

from storeengine.app import create_app
from storeengine.errors import Unavailable
from storeengine.storage import Collection
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, free_port, lifespan
from tests.test_schema_registry import write


def login(url: str) -> dict[str, str]:
    r = httpx.post(url + "/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def wait_status(url: str, headers: dict[str, str], status: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while (code := httpx.get(url, headers=headers).status_code) != status:
        assert time.monotonic() < deadline, f"{url}: {code}, wanted {status} within {timeout}s"
        time.sleep(0.05)


def test_real_server_serves_and_reloads_schemas(server, schema_dir):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok", "database": "ok"}
    assert "not persisted" in server.output().lower() or "NOT persisted" in server.output()
    admin = login(server.url)
    url = server.url + "/api/v1/gizmos"
    assert httpx.get(url, headers=admin).status_code == 404
    write(schema_dir, "gizmos", {"type": "object", "properties": {"name": {"type": "string"}},
                                 "additionalProperties": False})
    wait_status(url, admin, 200)
    assert httpx.post(url, json={"name": "a", "size": 3}, headers=admin).status_code == 400
    write(schema_dir, "gizmos", {"type": "object", "properties": {"name": {"type": "string"},
                                                                  "size": {"type": "integer"}},
                                 "additionalProperties": False})
    deadline = time.monotonic() + 2
    while httpx.post(url, json={"name": "a", "size": 3}, headers=admin).status_code != 201:
        assert time.monotonic() < deadline, "the changed schema was not picked up within 2 s"
        time.sleep(0.05)
    (schema_dir / "gizmos.json").unlink()
    wait_status(url, admin, 404)
    assert httpx.get(server.url + "/api/v1/products", headers=admin).status_code == 200


@pytest.fixture
def dead_db_settings(settings):
    return settings.model_copy(update={"mongodb_uri": f"mongodb://127.0.0.1:{free_port()}",
                                       "server_selection_timeout_ms": 200})


async def test_dead_database_gives_503_never_500(dead_db_settings):
    app = create_app(dead_db_settings)
    now = int(time.time())
    token = jwt.encode({"sub": "0123456789abcdef01234567", "iat": now, "nbf": now, "exp": now + 60,
                        "jti": f"{now * 1000:x}.x", "iss": "storeengine"}, dead_db_settings.secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/healthz")
        assert r.status_code == 503 and r.json()["database"] == "unavailable"
        for method, path, body in (("GET", "/api/v1/things", None), ("POST", "/api/v1/things", {"name": "x"}),
                                   ("GET", "/api/v1/things/0123456789abcdef01234567", None),
                                   ("POST", "/api/v1/auth/token", {"login": "a", "password": "b"})):
            r = await c.request(method, path, json=body, headers=headers)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["tags"] == ["error_unavailable"] and r.json()["code"] == "503"
            assert "Traceback" not in r.text and "pymongo" not in r.text.lower()


async def test_recovers_by_itself_when_the_database_returns(client, admin, monkeypatch):
    down = {"now": False}
    for name in ("find", "find_one"):
        real = getattr(Collection, name)

        def wrapper(real=real):
            async def call(self, *args, **kwargs):
                if down["now"]:
                    # What motor raises when the server goes away, through the same guard.
                    from storeengine.storage import guard
                    async with guard():
                        raise pymongo.errors.AutoReconnect("connection closed")
                return await real(self, *args, **kwargs)
            return call

        monkeypatch.setattr(Collection, name, wrapper())
    created = (await client.post("/api/v1/things", json={"name": "a"}, headers=admin)).json()
    down["now"] = True
    r = await client.get(f"/api/v1/things/{created['_id']}", headers=admin)
    assert r.status_code == 503 and r.json()["tags"] == ["error_unavailable"]
    assert (await client.get("/api/v1/things", headers=admin)).status_code == 503
    down["now"] = False
    r = await client.get(f"/api/v1/things/{created['_id']}", headers=admin)
    assert r.status_code == 200 and r.json() == created
    assert json.loads((await client.get("/api/v1/things", headers=admin)).text)[0]["name"] == "a"



async def test_reads_are_time_bounded_and_a_timeout_is_503():
    class SlowCollection:
        """Records what the driver was asked and answers as MongoDB does past maxTimeMS."""

        calls: list[dict] = []

        async def find_one(self, *args, **kwargs):
            self.calls.append(kwargs)
            raise pymongo.errors.ExecutionTimeout("operation exceeded time limit")

        async def count_documents(self, *args, **kwargs):
            self.calls.append(kwargs)
            raise pymongo.errors.ExecutionTimeout("operation exceeded time limit")

    coll = Collection(SlowCollection(), 1234)  # type: ignore[arg-type]
    for call in (coll.find_one({}), coll.count({})):
        with pytest.raises(Unavailable) as info:
            await call
        assert "too long" in info.value.message
    assert SlowCollection.calls == [{"sort": None, "max_time_ms": 1234}, {"maxTimeMS": 1234}]
