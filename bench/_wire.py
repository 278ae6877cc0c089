"""The MongoDB-wire server for `make bench`: mongoeco in .venv-wire (see tests/wire/), started on a
free loopback port for the run, or None when that virtualenv is missing (no Python >= 3.13)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo
from _common import stop_process

ROOT = Path(__file__).resolve().parent.parent
WIRE_PYTHON = ROOT / os.environ.get("WIRE_VENV", ".venv-wire") / "bin" / "python"
LAUNCHER = ROOT / "tests" / "wire" / "mongoeco_server.py"


def _answers(uri: str) -> bool:
    client: pymongo.MongoClient[dict[str, object]]
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300) as client:
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        return True


@contextlib.contextmanager
def wire_server() -> Iterator[str | None]:
    """Yield the URI of a running mongoeco wire server, or None when it is not installed."""
    if not WIRE_PYTHON.exists():
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    proc = subprocess.Popen([str(WIRE_PYTHON), str(LAUNCHER), str(port)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _answers(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the mongoeco wire server did not start")
            time.sleep(0.2)
        yield uri
    finally:
        stop_process(proc)
