"""The floor: the least a Python server can do for the bench's answers, on the best bare stack.

Starlette on PyMongo's async driver (`AsyncMongoClient`), orjson, uvicorn (one process, no access
log): find_one by _id, find().sort(_id).limit(n), insert_one. No authentication, no validation, no
access rule, no change feed. `python floor_app.py PORT`; FLOOR_MONGODB_URI, FLOOR_DATABASE.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["FLOOR_MONGODB_URI"])
items = client[os.environ.get("FLOOR_DATABASE", "bench_floor")]["items"]


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value, default=str), status, media_type="application/json")


async def health(request: Request) -> Response:
    return json_response({"ok": True})


async def listing(request: Request) -> Response:
    limit = int(request.query_params.get("limit", "1000"))
    return json_response(await items.find({}).sort("_id", 1).limit(limit).to_list(None))


async def one(request: Request) -> Response:
    try:
        doc = await items.find_one({"_id": ObjectId(request.path_params["id"])})
    except InvalidId:
        doc = None
    return json_response(doc) if doc else json_response({"error": "not found"}, 404)


async def create(request: Request) -> Response:
    doc = orjson.loads(await request.body())
    doc["_id"] = ObjectId()
    doc["createdAt"] = datetime.now(UTC)
    await items.insert_one(doc)
    return json_response(doc, 201)


app = Starlette(routes=[Route("/healthz", health), Route("/items", listing), Route("/items", create, methods=["POST"]),
                        Route("/items/{id}", one)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
