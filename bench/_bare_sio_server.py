"""The baseline for realtime_fanout and realtime_capacity: bare python-socketio under uvicorn; POST
/emit broadcasts the posted JSON as a `change` event to every connected client (or, with
`?room=R`, to the clients that sent `subscribe` {"store": R}), then answers.

Usage: python bench/_bare_sio_server.py PORT
"""

from __future__ import annotations

import sys

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sio = socketio.AsyncServer(async_mode="asgi", ping_interval=int(sys.argv[2]) if len(sys.argv) > 2 else 25)


async def emit(request: Request) -> JSONResponse:
    await sio.emit("change", await request.json(), to=request.query_params.get("room"))
    return JSONResponse({"success": True})


@sio.on("subscribe")  # type: ignore[untyped-decorator]
async def subscribe(sid: str, data: dict[str, str]) -> dict[str, bool]:
    await sio.enter_room(sid, data["store"])
    return {"success": True}


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = socketio.ASGIApp(sio, other_asgi_app=Starlette(routes=[
    Route("/emit", emit, methods=["POST"]), Route("/healthz", healthz)]))

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
