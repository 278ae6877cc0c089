"""Operations: a real server process (health, where the embedded database keeps its data, hot
reload), a database that cannot be reached, and recovery when it comes back (API.md 9, 5)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pymongo.errors
import pytest

from storeengine.app import create_app
from storeengine.core.errors import Unavailable
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.api import StorageAPI
from storeengine.storage.mongo import Collection
from tests.conftest import (
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    FAST_HASH,
    Server,
    free_port,
    lifespan,
)

SECRET = "test-secret-of-at-least-32-bytes!!"
ENVELOPE_KEYS = {"success", "code", "message", "tags"}


def assert_unavailable(r: httpx.Response) -> None:
    """503 with the error envelope, and nothing of the driver or of a traceback."""
    assert r.status_code == 503, r.text
    body = r.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["success"] is False and body["code"] == "503" and body["tags"] == ["error_unavailable"]
    for leak in ("Traceback", "pymongo", "AutoReconnect", "ServerSelection", "127.0.0.1", 'File "'):
        assert leak not in r.text, r.text


# --- the real server -----------------------------------------------------------------------

@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        r = c.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield c


def within_two_seconds(since: float, request: Callable[[], httpx.Response], status: int, what: str) -> httpx.Response:
    """Repeat `request` until it answers `status`, failing past 2 s after `since`."""
    while (r := request()).status_code != status:
        assert time.monotonic() < since + 2.0, f"{what}: still {r.status_code} {r.text} after 2 s"
        time.sleep(0.05)
    return r


def test_healthz_is_ok(server: Server) -> None:
    r = httpx.get(server.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


def test_log_says_where_the_embedded_database_keeps_its_data(server: Server) -> None:
    log = server.output()
    assert "embedded database (SQLite) in" in log and str(server.log.parent) in log, log
    assert "keeps its data" in log, log


def test_schema_files_are_hot_reloaded_without_restart(server: Server, http: httpx.Client, schema_dir: Path) -> None:
    path = schema_dir / "gizmos.json"
    assert http.get("/api/v1/gizmos").status_code == 404

    path.write_text(json.dumps({"type": "object", "properties": {"name": {"type": "string"}},
                                "additionalProperties": False}))
    within_two_seconds(time.monotonic(), lambda: http.get("/api/v1/gizmos"), 200, "added store")
    r = http.post("/api/v1/gizmos", json={"name": "a", "size": 3})
    assert r.status_code == 400 and set(r.json()["fields"]) == {"size"}, r.text
    assert http.get("/api/v1/gizmos").json() == []

    path.write_text(json.dumps({"type": "object", "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}))
    r = within_two_seconds(time.monotonic(), lambda: http.post("/api/v1/gizmos", json={"name": "a", "size": 3}),
                           201, "changed store accepts the new property")
    assert r.json()["size"] == 3
    assert [(g["name"], g["size"]) for g in http.get("/api/v1/gizmos").json()] == [("a", 3)]

    path.unlink()
    within_two_seconds(time.monotonic(), lambda: http.get("/api/v1/gizmos"), 404, "removed store")
    assert http.get("/api/v1/gizmos").json()["tags"] == ["error_not_found"]
    assert http.get("/api/v1/products").status_code == 200
    assert server.proc.poll() is None  # the same process all along


# --- the database is down ------------------------------------------------------------------

def crafted_token(user_id: str = "0123456789abcdef01234567") -> str:
    """A token as storeengine/auth/tokens.py makes them, signed with the test secret."""
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    claims = {"sub": user_id, "iat": now, "nbf": now, "exp": now + 600,
              "jti": f"{now_ms:x}.{secrets.token_urlsafe(12)}", "iss": "storeengine"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
async def down_client(schema_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose MongoDB is a closed local port."""
    settings = Settings(mongodb_uri=f"mongodb://127.0.0.1:{free_port()}", server_selection_timeout_ms=200,
                        schema_dir=schema_dir, secret=SECRET, admin_password=ADMIN_PASSWORD,
                        schema_poll_seconds=0.1, **FAST_HASH)
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.headers["Authorization"] = f"Bearer {crafted_token()}"
            yield c


async def test_healthz_reports_the_database_unavailable(down_client: httpx.AsyncClient) -> None:
    r = await down_client.get("/healthz")
    assert r.status_code == 503, r.text
    assert r.json()["database"] == "unavailable"
    assert "Traceback" not in r.text and "pymongo" not in r.text


ID = "0123456789abcdef01234567"
DOWN_REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/things", None),
    ("GET", "/api/v1/things?meta=true", None),
    ("POST", "/api/v1/things", {"name": "x"}),
    ("GET", f"/api/v1/things/{ID}", None),
    ("PATCH", f"/api/v1/things/{ID}", {"name": "y"}),
    ("PUT", f"/api/v1/things/{ID}", {"name": "y"}),
    ("DELETE", f"/api/v1/things/{ID}", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/auth/token", {"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}),
]


async def test_store_routes_answer_503_never_500(down_client: httpx.AsyncClient) -> None:
    # One app, the requests at once: each waits out the driver's server selection.
    answers = await asyncio.gather(*(down_client.request(m, p, json=b) for m, p, b in DOWN_REQUESTS))
    for (method, path, _), r in zip(DOWN_REQUESTS, answers, strict=True):
        try:
            assert_unavailable(r)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from None


async def test_a_bad_token_is_still_401_while_the_database_is_down(down_client: httpx.AsyncClient) -> None:
    """Authentication comes first: a forged token is refused without asking the database."""
    r = await down_client.get("/api/v1/things", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401, r.text
    assert r.json()["tags"] == ["error_unauthorized"]


# --- recovery ------------------------------------------------------------------------------

class DeadDriver:
    """A driver collection whose server went away."""

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise pymongo.errors.AutoReconnect("connection closed")
        return call


class SwitchableStorage:
    """The app's storage seam (create_app(storage=...)): the real embedded database, whose reads,
    while `down` is set, run MongoDB's real guarded Collection code over a driver that raises."""

    def __init__(self, real: StorageAPI) -> None:
        self.real, self.down = real, False
        self.embedded, self.database_name = real.embedded, real.database_name

    def collection(self, name: str) -> Any:
        return SwitchableCollection(self, self.real.collection(name))

    async def ping(self) -> bool:
        return await self.real.ping()

    async def close(self) -> None:
        await self.real.close()


class SwitchableCollection:
    def __init__(self, owner: SwitchableStorage, real: Any) -> None:
        self.owner, self.real = owner, real

    def __getattr__(self, name: str) -> Any:
        if self.owner.down and name in ("find", "find_one"):
            return getattr(Collection(DeadDriver(), 1000), name)
        return getattr(self.real, name)


@pytest.fixture
async def switchable(settings: Settings) -> SwitchableStorage:
    return SwitchableStorage(connect(settings))


@pytest.fixture
async def app(settings: Settings, switchable: SwitchableStorage) -> AsyncIterator[Any]:
    """This module's app runs over the switchable storage (a pass-through while it is up)."""
    application = create_app(settings, storage=switchable)
    async with lifespan(application):
        yield application


async def test_store_routes_recover_by_themselves(client: httpx.AsyncClient, admin: dict[str, str],
                                                  switchable: SwitchableStorage) -> None:
    created = await client.post("/api/v1/things", json={"name": "a"}, headers=admin)
    assert created.status_code == 201, created.text
    entity = created.json()
    item, listing = f"/api/v1/things/{entity['_id']}", "/api/v1/things"

    switchable.down = True
    for path in (item, listing, listing + "?meta=true"):
        assert_unavailable(await client.get(path, headers=admin))
    assert_unavailable(await client.patch(item, json={"name": "b"}, headers=admin))

    switchable.down = False
    r = await client.get(item, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == entity  # the refused PATCH wrote nothing
    assert (await client.get(listing, headers=admin)).json() == [entity]
    r = await client.patch(item, json={"name": "b"}, headers=admin)
    assert r.status_code == 200 and r.json()["name"] == "b", r.text
    assert (await client.get("/healthz")).status_code == 200


async def test_reads_are_time_bounded_and_a_timeout_is_503():
    class SlowCollection:
        """Records what the driver was asked and answers as MongoDB does past maxTimeMS."""

        calls: ClassVar[list[dict]] = []

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
