"""What one abusive client costs the others (issue 19): a bystander's latency, the server's memory
and its log, while one client floods deep nesting, holds stalled SSE streams, or replays an old
`since` over Socket.IO without reading.

Each scenario starts its own `storeengine serve` (embedded database, loopback), seeds what it
needs, then runs the abuse for a bounded time while a bystander (another user) lists a small
store every 20 ms. Printed per scenario: the bystander's p50 / p99 / max latency and its 5xx,
the server's RSS before, at its peak and after the abuse (stalled clients still connected), the
log bytes written, and what the abuser got back.

With --wire the servers use a MongoDB-wire server (mongoeco, from WIRE_VENV, see bench/_wire.py)
instead of the embedded database: the data then lives in another process, so the server's RSS
shows what it holds for its clients (on the embedded database a buffered change shares its
strings with the stored copy, and the stored data itself dominates the RSS: see `writes`).

Usage: python bench/abuse.py [--seconds 10] [--only nesting,writes,sse,sse-blind,sio] [--wire]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import ADMIN_PASSWORD, SECRET, percentile, schema_folder, stop_process
from _wire import wire_server
from realtime_fanout import free_port

NOTES = {"type": "object", "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
         "x-acl": {"read": ["owner", "group", "access", "branch"]}}
PRODUCTS = {"type": "object", "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
            "x-acl": {"read": ["authenticated"]}}
DEPTH = 330  # deep enough to break a recursive walk (the probe's figure), under orjson's own limit


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    url: str
    port: int
    pid: int
    log: Path

    def log_bytes(self) -> int:
        return self.log.stat().st_size


@contextlib.contextmanager
def serve(extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A fresh `storeengine serve` on the embedded database; stopped (this process only) at the end."""
    folder = schema_folder({"notes": json.dumps(NOTES), "products": json.dumps(PRODUCTS)})
    log = Path(tempfile.mkstemp(prefix="storeengine-abuse-", suffix=".log")[1])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}  # embedded unless extra_env says
    env.update({"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
                "STORE_ARGON2_MEMORY_KIB": "64", **(extra_env or {})})
    cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
           "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited:\n{log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            yield Server(url, port, proc.pid, log)
        finally:
            stop_process(proc)
            log.unlink(missing_ok=True)


def token(server: Server, login: str, password: str) -> str:
    r = httpx.post(server.url + "/api/v1/auth/token", json={"login": login, "password": password}, timeout=60)
    r.raise_for_status()
    return str(r.json()["token"])


def user(server: Server, admin: str, login: str) -> str:
    body = {"login": login, "password": "password-123"}
    r = httpx.post(server.url + "/api/v1/users", json=body, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    r.raise_for_status()
    return token(server, login, "password-123")


@dataclass
class Bystander:
    """Lists a small store every 20 ms while the abuse runs."""

    server: Server
    bearer: str
    times: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {self.bearer}"},
                          timeout=60) as c:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    self.statuses[c.get("/api/v1/products", params={"limit": 20}).status_code] += 1
                except httpx.HTTPError:
                    self.statuses[0] += 1
                self.times.append(time.perf_counter() - start)
                time.sleep(0.02)


@dataclass
class Report:
    name: str
    lines: list[str] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.lines.append(f"  {label:<44} {value}")


def run_abuse(server: Server, bystander_token: str, seconds: float, abusers: list[Callable[[threading.Event], None]],
              report: Report, settle: float = 2.0) -> None:
    """Bystander + abusers for `seconds`; RSS sampled every 0.25 s; figures into `report`."""
    by = Bystander(server, bystander_token)
    rss_before, log_before = rss_mb(server.pid), server.log_bytes()
    stop = threading.Event()
    threads = [threading.Thread(target=by.run)] + [threading.Thread(target=a, args=(stop,)) for a in abusers]
    for t in threads:
        t.start()
    peak, end = rss_before, time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, rss_mb(server.pid))
        time.sleep(0.25)
    stop.set()
    by.stop.set()
    for t in threads:
        t.join(120)
    time.sleep(settle)  # stalled clients stay connected: what the server still holds
    ms = [t * 1000 for t in by.times]
    fives = sum(n for s, n in by.statuses.items() if s >= 500 or s == 0)
    report.add("bystander list p50 / p99 / max (ms)",
               f"{percentile(ms, 50):.1f} / {percentile(ms, 99):.1f} / {max(ms):.1f}  ({len(ms)} calls, {fives} 5xx)")
    report.add("server RSS before / peak / after (MB)",
               f"{rss_before:.0f} / {max(peak, rss_mb(server.pid)):.0f} / {rss_mb(server.pid):.0f}")
    report.add("log bytes written", f"{server.log_bytes() - log_before}")


# --- the abusers ------------------------------------------------------------------------------

def nesting_flood(server: Server, bearer: str, counts: Counter[str]) -> Callable[[threading.Event], None]:
    """Deep nesting everywhere: anonymous token bodies, bodies, filter chains, dotted paths."""
    arrays = "[" * DEPTH + "]" * DEPTH
    chain = '{"title": ' + '{"$not": ' * DEPTH + '{"$eq": "x"}' + "}" * DEPTH + "}"
    dotted = ".".join(["title"] + ["a"] * 1000)
    auth = {"Authorization": f"Bearer {bearer}"}

    def query(name: str, value: str) -> str:
        return "/api/v1/notes?" + str(httpx.QueryParams({name: value}))

    requests: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("POST", "/api/v1/auth/token", {}, ('{"login": ' + arrays + "}").encode()),
        ("POST", "/api/v1/notes", auth, ('{"title": "t", "x": ' + arrays + "}").encode()),
        ("GET", query("filter", chain), auth, None),
        ("GET", query("only", dotted), auth, None),
        ("GET", query("sort", dotted), auth, None),
    ]

    def flood(stop: threading.Event) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            i = 0
            while not stop.is_set():
                method, path, headers, body = requests[i % len(requests)]
                i += 1
                try:
                    r = c.request(method, path, headers={**headers, "Content-Type": "application/json"}, content=body)
                    counts[str(r.status_code)] += 1
                except httpx.HTTPError:
                    counts["error"] += 1

    return flood


def stalled_sse(server: Server, bearer: str, streams: int, opened: list[socket.socket],
                statuses: Counter[str]) -> Callable[[threading.Event], None]:
    """`streams` SSE requests of one credential that never read their answers."""

    def stall(stop: threading.Event) -> None:
        for _ in range(streams):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall((f"GET /api/v1/notes/_changes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {bearer}\r\nAccept: text/event-stream\r\n\r\n").encode())
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                statuses[sock.recv(12).decode(errors="replace")[9:12]] += 1  # the status line only
            opened.append(sock)
        stop.wait()

    return stall


def writer(server: Server, bearer: str, writes: int, size: int) -> Callable[[threading.Event], None]:
    """`writes` notes of `size` bytes, one after another (bounded)."""
    body = "x" * size

    def write(stop: threading.Event) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=60) as c:
            for i in range(writes):
                if stop.is_set():
                    return
                c.post("/api/v1/notes", json={"title": f"n{i}", "body": body})

    return write


class RawWebSocket:
    """A WebSocket client over a plain socket with a tiny receive buffer, that can stop reading."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))

    def _need(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        size = len(data)
        if size < 126:
            head = bytes([0x81, 0x80 | size])
        elif size < 65536:
            head = bytes([0x81, 0xFE]) + struct.pack("!H", size)
        else:
            head = bytes([0x81, 0xFF]) + struct.pack("!Q", size)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        _, second = self._need(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._need(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._need(8))[0]
        return self._need(size).decode()


def replay_flood(server: Server, bearer: str, since: str, subscribes: int,
                 held: list[RawWebSocket]) -> Callable[[threading.Event], None]:
    """One socket sends `subscribe` with an old `since` many times and never reads."""

    def flood(stop: threading.Event) -> None:
        ws = RawWebSocket(server.port, "/socket.io/?EIO=4&transport=websocket", {})
        ws.recv()  # Engine.IO open
        ws.send("40" + json.dumps({"token": bearer}))
        ws.recv()  # Socket.IO connect
        for i in range(subscribes):
            ws.send(f"42{i}" + json.dumps(["subscribe", {"store": "notes", "since": since}]))
        held.append(ws)
        stop.wait()

    return flood


# --- scenarios --------------------------------------------------------------------------------

def scenario_nesting(seconds: float, env: dict[str, str]) -> Report:
    report = Report("deep-nesting flood (4 clients: token bodies, bodies, filter chains, dotted paths)")
    with serve(env) as server:
        admin = token(server, "admin", ADMIN_PASSWORD)
        abuser, carol = user(server, admin, "mallory"), user(server, admin, "carol")
        counts: Counter[str] = Counter()
        run_abuse(server, carol, seconds, [nesting_flood(server, abuser, counts) for _ in range(4)], report)
        refused = sum(counts.values())
        report.add("abuser answers", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        log = report.lines[-2].split()[-1]
        report.add("log bytes per abusive request", f"{int(log) / max(refused, 1):.0f}")
    return report


def scenario_sse(seconds: float, env: dict[str, str], *, blind: bool) -> Report:
    what = "who may read nothing" if blind else "who reads every change"
    report = Report(f"30 stalled SSE streams of one user {what}, 400 writes of 200 KB")
    with serve(env) as server:
        admin = token(server, "admin", ADMIN_PASSWORD)
        abuser, carol = user(server, admin, "mallory"), user(server, admin, "carol")
        sockets: list[socket.socket] = []
        statuses: Counter[str] = Counter()
        write_as = admin if blind else abuser  # the abuser reads its own notes, not the admin's
        run_abuse(server, carol, seconds, [stalled_sse(server, abuser, 30, sockets, statuses),
                                           writer(server, write_as, 400, 200_000)], report)
        report.add("stream answers", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
        for sock in sockets:
            sock.close()
    return report


def scenario_writes(seconds: float, env: dict[str, str]) -> Report:
    """The control of the SSE scenarios: the same writes, nobody streaming. The embedded database
    keeps every entity and change in this process, so its RSS grows by the data itself."""
    report = Report("control: the same 400 writes of 200 KB, no stream")
    with serve(env) as server:
        admin = token(server, "admin", ADMIN_PASSWORD)
        abuser, carol = user(server, admin, "mallory"), user(server, admin, "carol")
        run_abuse(server, carol, seconds, [writer(server, abuser, 400, 200_000)], report)
    return report


def scenario_sio(seconds: float, env: dict[str, str]) -> Report:
    report = Report("one socket: 40 subscribes with an old since, never reading (3,000 changes of 2 KB)")
    with serve(env) as server:
        admin = token(server, "admin", ADMIN_PASSWORD)
        abuser, carol = user(server, admin, "mallory"), user(server, admin, "carol")
        headers = {"Authorization": f"Bearer {abuser}"}
        since = httpx.get(server.url + "/api/v1/notes", headers=headers).headers["x-change-cursor"]
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            for i in range(3000):
                c.post("/api/v1/notes", json={"title": f"n{i}", "body": "y" * 2000})
        held: list[RawWebSocket] = []
        run_abuse(server, carol, seconds, [replay_flood(server, abuser, since, 40, held),
                                           writer(server, abuser, 200, 2000)], report)
        for ws in held:
            ws.sock.close()
    return report


SCENARIOS: dict[str, Callable[[float, dict[str, str]], Report]] = {
    "nesting": scenario_nesting,
    "writes": scenario_writes,
    "sse": lambda s, env: scenario_sse(s, env, blind=False),
    "sse-blind": lambda s, env: scenario_sse(s, env, blind=True),
    "sio": scenario_sio,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--wire", action="store_true", help="use a MongoDB-wire server (mongoeco)")
    args = parser.parse_args()
    with wire_server() if args.wire else contextlib.nullcontext() as uri:
        if args.wire and uri is None:
            raise SystemExit("--wire: no mongoeco (WIRE_VENV) here")
        where = "a MongoDB-wire server (mongoeco)" if uri else "the embedded database"
        print(f"abuse: one client against the others ({where}, loopback, 2 shared cores)", flush=True)
        for name in args.only.split(","):
            env = {"STORE_MONGODB_URI": uri, "STORE_DATABASE": f"abuse_{name.replace('-', '_')}_{os.getpid()}",
                   "STORE_SERVER_SELECTION_TIMEOUT_MS": "20000"} if uri else {}
            report = SCENARIOS[name](args.seconds, env)
            print(f"\n{name}: {report.name}", flush=True)
            print("\n".join(report.lines), flush=True)


if __name__ == "__main__":
    main()
