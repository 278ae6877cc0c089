"""Eve (PyPI `eve`) in a virtualenv of its own (bench/.peers/eve: its Flask and pymongo pins stay out
of ours), served by gunicorn, one process (gthread worker, 8 threads), on a given MongoDB URI.

Set-up: the `items` resource with the bench fields (eve_app.py); token authentication with
`auth_field` (each document belongs to the account that posted it, every read filters on it); the
account, a normal one (Eve has no roles here), is inserted into `accounts` directly, since Eve has
no sign-up endpoint. Seeding goes through Eve's own POST.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo

from peers._base import answers, free_port, process, venv_install, wait_until
from peers.target import LIST_SIZE, Target, fields, iso_ms

REQUIREMENTS = ["eve==2.3.*", "gunicorn>=23"]
THREADS = 8


@contextlib.contextmanager
def eve_server(mongodb_uri: str, database: str = "bench_eve") -> Iterator[Target]:
    bin_dir = venv_install("eve", REQUIREMENTS)
    token = secrets.token_urlsafe(24)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(mongodb_uri, document_class=dict) as client:
        client[database]["accounts"].insert_one({"username": "bench-user", "token": token})
    port = free_port()
    cmd = [str(bin_dir / "gunicorn"), "--workers", "1", "--worker-class", "gthread", "--threads", str(THREADS),
           "--bind", f"127.0.0.1:{port}", "--chdir", str(Path(__file__).resolve().parent / "apps"), "eve_app:app"]
    with process(cmd, "eve", {"EVE_MONGO_URI": mongodb_uri, "EVE_MONGO_DBNAME": database}) as proc:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        wait_until(answers(base + "/items", ok=(200, 401)), proc, "eve")

        def body(i: int) -> dict[str, Any]:
            item = fields(i)
            return {**item, "listedAt": iso_ms(item["listedAt"])}

        yield Target(name="Eve", base=base, headers=headers, item_prefix="/items/",
                     list_path=f"/items?max_results={LIST_SIZE}", create_path="/items", body=body,
                     new_id=lambda answer: str(answer["_id"]), listed=lambda answer: len(answer["_items"]),
                     pids=[proc.pid], stored_in=(database, "items"),
                     setup=f"gunicorn, 1 process x {THREADS} threads; bearer token (cached), auth_field=owner")
