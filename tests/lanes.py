"""The storage lanes: every test runs on the embedded database; a module that sets
`LANES = ("embedded", "wire")` runs each of its tests on both, the wire run through real driver
connections to a mongoeco MongoDB-wire server (one server for the session, a fresh database per
test). Tests under tests/wire/ run on the wire only. Loaded as a plugin by tests/conftest.py.

- `wire_server` (session): the running wire server; `.stop()` / `.start()` restart it on the same port.
- `wire_db` (function): a fresh database on it, dropped after the test; `.env` holds the
  STORE_MONGODB_URI and STORE_DATABASE a `storeengine serve` process needs.

mongoeco needs Python >= 3.13: `make wire-env` builds `.venv-wire`. Without it the lane is skipped
(loudly), or fails when STORE_REQUIRE_WIRE=1 (as in CI).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from tests.conftest import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
WIRE_TESTS = Path(__file__).resolve().parent / "wire"
WIRE_PYTHON = ROOT / os.environ.get("WIRE_VENV", ".venv-wire") / "bin" / "python"
LAUNCHER = Path(__file__).resolve().parent / "wire" / "mongoeco_server.py"
REQUIRED = os.environ.get("STORE_REQUIRE_WIRE") == "1"
SECRET = "test-secret-of-at-least-32-bytes!!"  # the one start_server gives its processes
_skipped: list[str] = []


class WireServer:
    """A mongoeco MongoDB-wire server process on a fixed loopback port; with `data` (an SQLite
    file) its data survives a restart, as a real server's would."""

    def __init__(self, log: Path, data: Path | None = None) -> None:
        self.port = free_port()
        self.log, self.data = log, data
        self.proc: subprocess.Popen[bytes] | None = None
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(WIRE_PYTHON), str(LAUNCHER), str(self.port),
                                          *([str(self.data)] if self.data else [])], stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the wire server exited:\n{self.log.read_text(errors='replace')}")
            if self.answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the wire server did not answer in {timeout} s:\n{self.log.read_text(errors='replace')}")

    def answers(self) -> bool:
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300) as client:
            try:
                client.admin.command("ping")
            except pymongo.errors.PyMongoError:
                return False
            return True

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class WireDatabase:
    def __init__(self, server: WireServer, name: str) -> None:
        self.server, self.name, self.uri = server, name, server.uri

    @property
    def env(self) -> dict[str, str]:
        return {"STORE_MONGODB_URI": self.uri, "STORE_DATABASE": self.name}


# Tests that meet a known difference of mongoeco from MongoDB (not of storeengine): marked on the
# collected item only, so the same test still runs normally on the embedded database.
MONGOECO_QUIRKS = {
    "test_lists.py::test_only_keeps_id_and_the_named_fields":
        "mongoeco drops the parent of a missing nested projected path (MongoDB keeps `nested: {}`)",
    "test_storage_wire.py::test_projections":
        "mongoeco drops an array element whose projected sub-path is missing (MongoDB keeps it as `{}`)",
    "test_storage_wire.py::test_sort_order_across_types":
        "mongoeco sorts an empty array as an array (MongoDB: before null and missing)",
    "test_lists.py::test_an_offset_may_be_any_64_bit_integer":
        "mongoeco refuses a skip past 32 bits ('wire find skip must be a non-negative integer'; MongoDB takes 64)",
    "test_aggregate.py::test_a_sum_past_64_bits_is_a_double_as_in_mongodb":
        "mongoeco fails a $sum past 64 bits ('integer exceeds BSON int64 range'; MongoDB gives a double)",
}


def on_wire(item: pytest.Item) -> bool:
    """Tests under tests/wire/, and the wire-lane runs of modules with LANES."""
    callspec = getattr(item, "callspec", None)
    return WIRE_TESTS in Path(str(item.path)).resolve().parents or (
        callspec is not None and callspec.params.get("lane") == "wire")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if on_wire(item):
            item.add_marker(pytest.mark.wire)
            name = getattr(item, "originalname", item.name)
            quirk = MONGOECO_QUIRKS.get(f"{Path(str(item.path)).name}::{name}")
            if quirk:
                item.add_marker(pytest.mark.xfail(strict=True, reason=quirk))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_sep("!", "MongoDB-wire lane SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_skipped[0])
        terminalreporter.write_line("Run `make wire-env` with a Python >= 3.13 available (PATH or pyenv).")


def require_wire() -> None:
    """Skip (loudly) without the wire virtualenv, or fail when STORE_REQUIRE_WIRE=1."""
    if not WIRE_PYTHON.exists():
        reason = f"the MongoDB-wire lane needs {WIRE_PYTHON.relative_to(ROOT)} (Python >= 3.13 + mongoeco)"
        if REQUIRED:
            pytest.fail(f"STORE_REQUIRE_WIRE=1 and {reason}: run `make wire-env`", pytrace=False)
        _skipped.append(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireServer]:
    require_wire()
    server = WireServer(tmp_path_factory.mktemp("wire") / "mongoeco.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def wire_db(wire_server: WireServer) -> Iterator[WireDatabase]:
    """A fresh database for one test; dropped after it (the server is restarted if a test stopped it)."""
    if not wire_server.running:
        wire_server.start()
    db = WireDatabase(wire_server, f"t_{uuid.uuid4().hex[:12]}")
    yield db
    if not wire_server.running:
        wire_server.start()
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(db.uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(db.name)
