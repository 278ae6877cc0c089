"""Run mongoeco's MongoDB-wire server until SIGTERM/SIGINT (run with the .venv-wire Python >= 3.13).

Usage: python mongoeco_server.py PORT [SQLITE_FILE]
With SQLITE_FILE the data survives a restart (as a real server's would); without it, it lives in memory.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from mongoeco.engines import SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


async def main(port: int, path: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = SQLiteEngine(path) if path else None
    async with AsyncMongoEcoProxyServer(host="127.0.0.1", port=port, engine=engine) as server:
        print(f"ready {server.address.port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
