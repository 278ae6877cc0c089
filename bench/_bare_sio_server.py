"""The baseline for realtime_fanout: bare python-socketio broadcasting on POST /emit."""

from __future__ import annotations

import sys

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sio = socketio.AsyncServer(async_mode="asgi", ping_interval=25, ping_timeout=60)


async def emit(request: Request) -> JSONResponse:
    payload = await request.json()
    await sio.emit("change", payload)
    return JSONResponse({"success": True})


app = socketio.ASGIApp(sio, other_asgi_app=Starlette(routes=[Route("/emit", emit, methods=["POST"])]))

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
