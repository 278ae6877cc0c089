"""Tests that run only on the MongoDB-wire lane (tests/lanes.py): the checks only a real driver
shows, and several `storeengine serve` processes on one database (`serving`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server, stop_server
from tests.lanes import WireDatabase


@pytest.fixture
def lane() -> str:
    """Every test here runs on the wire (the shared `settings` then points the app at `wire_db`)."""
    return "wire"


@contextlib.contextmanager
def serving(n: int, wire_db: WireDatabase, schema_dir: Path, tmp_path: Path, *, workers: int = 1,
            env: dict[str, str] | None = None) -> Iterator[list[Server]]:
    """N `storeengine serve` processes (each with `workers` workers) on one wire database."""
    servers: list[Server] = []
    try:
        for index in range(n):
            log = tmp_path / f"serve-{index}-{uuid.uuid4().hex[:6]}.log"
            servers.append(start_server(schema_dir, log, env={**wire_db.env, **(env or {})}, workers=workers))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
