"""Socket.IO long-polling is refused, clearly, where it cannot work: several workers (docs/scaling.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from storeengine.app import create_app
from storeengine.settings import Settings
from tests.conftest import lifespan

HANDSHAKE = {"EIO": "4", "transport": "polling"}


async def handshake(settings: Settings, **changes: Any) -> httpx.Response:
    app = create_app(settings.model_copy(update=changes))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get("/socket.io/", params=HANDSHAKE)


async def test_one_worker_serves_long_polling(settings: Settings) -> None:
    r = await handshake(settings)
    assert r.status_code == 200 and r.text.startswith("0{"), r.text


@pytest.mark.parametrize("params", [HANDSHAKE, {"EIO": "3", "transport": "polling"}, {"EIO": "4"}])
async def test_several_workers_refuse_long_polling_in_the_error_envelope(settings: Settings,
                                                                         params: dict[str, str]) -> None:
    app = create_app(settings.model_copy(update={"workers": 2}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/socket.io/", params=params)
        assert (await c.get("/healthz")).status_code == 200  # everything else is served as before
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["success"] is False and body["tags"] == ["error_bad_request"], body
    assert "transports ['websocket']" in body["message"] and "STORE_SOCKETIO_POLLING" in body["message"]


async def test_polling_can_be_forced_on_behind_sticky_sessions(settings: Settings) -> None:
    r = await handshake(settings, workers=2, socketio_polling=True)
    assert r.status_code == 200 and r.text.startswith("0{"), r.text


async def test_polling_can_be_turned_off_for_one_worker_too(settings: Settings) -> None:
    assert (await handshake(settings, socketio_polling=False)).status_code == 400
