"""Provisioning a tenant by copy (API.md 12, auth/provision.py): the copy never holds the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from storeengine.app import create_app
from storeengine.auth import provision
from storeengine.settings import Settings
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, lifespan, token_for


async def test_the_copy_yields_to_other_clients_every_few_entities(settings: Settings, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On the embedded database (files) a short write runs on the event loop's thread without
    suspending: a copy that did not yield held every other client for a whole batch (500)."""
    copied = 0
    copy_entity = provision.copy_entity

    async def counted(*args: Any) -> None:
        nonlocal copied
        await copy_entity(*args)
        copied += 1

    monkeypatch.setattr(provision, "copy_entity", counted)
    app = create_app(settings.model_copy(update={"data_dir": str(tmp_path / "data")}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://testserver") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        for n in range(150):
            assert (await client.post("/api/v1/things", json={"name": f"t{n}"}, headers=admin)).status_code == 201
        gaps: list[int] = []  # entities copied between two turns of another coroutine

        async def other_client() -> None:
            seen = copied
            while True:
                await asyncio.sleep(0)
                gaps.append(copied - seen)
                seen = copied

        watching = asyncio.create_task(other_client())
        body = {"name": "big", "admin": {"login": "boss", "password": "boss-password-1"}}
        assert (await client.post("/api/v1/_tenants", json=body, headers=admin)).status_code == 201
        tenancy = app.other_asgi_app.app.state.tenancy
        await asyncio.gather(*tenancy.copies.values())
        watching.cancel()
    assert copied >= 150
    assert max(gaps) <= 20, max(gaps)  # provision.YIELD_EVERY
