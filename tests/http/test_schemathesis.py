"""Schemathesis against the live OpenAPI document, as admin: zero 5xx, and every answer within the
documented statuses, content types, headers and schemas (and 405 + Allow for other methods).

Bounded and repeatable: a fixed seed, a fixed number of examples per operation, the coverage and
fuzzing phases. Not run: POST /api/v1/auth/logout (it would end the run's own credential), POST
/api/v1/_tenants (each provisions a database; tests/http/test_tenants.py covers it), the
stateful phase (its links from /auth/me can deactivate or delete the very admin the run uses), and
the two checks that want every state-dependent refusal expressed in the schema
(positive_data_acceptance / negative_data_rejection: a valid body can still meet 404, 409 or 412)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Server, start_server, stop_server

SEED = 20261124
EXAMPLES = 5
MIN_REQUESTS = 500
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,unsupported_method,allow_header_conformance")


@pytest.fixture
def history_server(schema_dir: Path, tmp_path: Path) -> Iterator[Server]:
    history = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 50}}, "x-history": True}
    (schema_dir / "journal.json").write_text(json.dumps(history))
    server = start_server(schema_dir, tmp_path / "server.log")
    yield server
    stop_server(server)


def schemathesis_cli() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is a test dependency: make install"
    return [found]


def test_live_document_holds_under_schemathesis(history_server: Server, tmp_path: Path) -> None:
    scratch = tmp_path / "schemathesis"
    scratch.mkdir()
    url = history_server.url
    token = httpx.post(url + "/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    token.raise_for_status()
    auth = f"Authorization: Bearer {token.json()['token']}"
    # The run's own identity stays out of reach: schemathesis feeds ids it has seen (the admin's,
    # from /auth/me) into other operations, and a PUT of the admin without `roles` ends the run.
    excluded = [r"POST /api/v1/auth/logout", r"(PUT|PATCH|DELETE) /api/v1/users/\{id\}(/acl)?",
                # each one provisions a database (threads, files, a copy): tests/http/test_tenants.py
                r"POST /api/v1/_tenants"]
    if httpx.get(url + "/api/v1/things/_changes", headers={"Authorization": auth.split(": ", 1)[1]}).status_code == 404:
        # The change feed (API.md 10) is not in this build yet: its documented 404 still holds, but the
        # generic /{id} route answers its other methods. Tested in full as soon as the feed answers.
        print("NOTE: no change feed in this build; /_changes operations are left out", file=sys.stderr)
        excluded.append(r"[A-Z]+ /api/v1/[^/]+/_changes")
    # One worker: with two threads, hypothesis' lambda descriptions hit CPython 3.11's ast.parse
    # race ("SystemError: AST constructor recursion depth mismatch") and the run aborts.
    cmd = [*schemathesis_cli(), "run", f"{url}/api/v1/_openapi.json", "-H", auth, "--checks", CHECKS,
           "--phases", "coverage,fuzzing", "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
           "--generation-deterministic",
           "--exclude-name-regex", "^(" + "|".join(f"({p})" for p in excluded) + ")$", "--no-color"]
    start = time.monotonic()
    # In a scratch folder: the CLI leaves its .hypothesis / .schemathesis caches where it runs.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=scratch)
    spent = time.monotonic() - start
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    assert generated, output[-5000:]
    assert done.returncode == 0, output[-20000:]
    assert int(generated.group(1)) >= MIN_REQUESTS, output[-3000:]
    print(f"schemathesis: {generated.group(1)} requests in {spent:.0f} s", file=sys.stderr)
