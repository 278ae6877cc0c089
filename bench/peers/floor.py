"""The floor (apps/floor_app.py) served by uvicorn in a process of its own, on a given MongoDB URI.

No authentication: the floor is what an HTTP server on this stack costs before any engine work.
Seeding goes through its own POST.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import server_process

from peers._base import free_port
from peers.target import LIST_SIZE, Target, fields


@contextlib.contextmanager
def floor(mongodb_uri: str, database: str = "bench_floor", name: str = "floor",
          serves_of: str | None = None) -> Iterator[Target]:
    """The floor on its own database; or, with `serves_of`, reading that peer's stored entities (its
    `database`, collection `items`): the same documents, the bare stack's cost (reads only)."""
    port = free_port()
    app = Path(__file__).resolve().parent / "apps" / "floor_app.py"
    with server_process([sys.executable, str(app), str(port)], port,
                        {"FLOOR_MONGODB_URI": mongodb_uri, "FLOOR_DATABASE": database}) as (base, pid):

        def body(i: int) -> dict[str, Any]:
            item = fields(i)
            return {**item, "listedAt": item["listedAt"].isoformat()}

        yield Target(name=name, base=base, headers={}, item_prefix="/items/",
                     list_path=f"/items?limit={LIST_SIZE}", create_path="/items", body=body,
                     new_id=lambda answer: str(answer["_id"]), listed=len, pids=[pid], stored_in=(database, "items"),
                     serves_of=serves_of,
                     setup="Starlette + AsyncMongoClient + orjson under uvicorn; no auth, no checks" +
                           (f"; reads {serves_of}'s stored documents" if serves_of else ""))
