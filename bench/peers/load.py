"""The one load tool for every peer: wrk (Debian's `wrk`) with wrk.lua, one thread, N connections.

A measured run is a counted one (a number of answers, timed from the first request to the last
answer) after a warm-up of its own; any connection error, timeout or answer of 400 or more fails the
run (a fast error page must never pass for a fast server).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from peers.target import Target

LUA = Path(__file__).resolve().parent / "wrk.lua"
# Seconds an answer may take before wrk counts a timeout (which fails the run). On a machine shared
# with other work, 32 lists of 1,000 in flight on jongodb (~0.1 s of its CPU each) took over 30 s.
TIMEOUT = int(os.environ.get("BENCH_PEER_TIMEOUT", "30"))


@dataclass
class Load:
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def ms_each(self) -> float:
        """Wall time per request at this concurrency (1 / throughput)."""
        return self.seconds * 1000 / self.requests


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: `apt-get install -y wrk` (Debian's package)")
    return found


class Driver:
    """Files wrk.lua reads for one target (its headers, ids and POST bodies), and the runs."""

    def __init__(self, target: Target, bodies: int = 2000) -> None:
        self.target = target
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-wrk-{target.name.replace(' ', '-')}-"))
        (self.folder / "headers").write_text("".join(f"{k}: {v}\n" for k, v in target.headers.items()))
        (self.folder / "ids").write_text("\n".join(target.ids) + "\n")
        # POST bodies after the seeded ones, so that names never repeat within a run.
        first = len(target.ids)
        (self.folder / "bodies").write_text(
            "".join(json.dumps(target.body(first + i), separators=(",", ":")) + "\n" for i in range(bodies)))

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, mode: str, connections: int, seconds: float, count: int = 0) -> Load:
        """A run of `seconds`, or (POST only) of `count` answers, with at most `seconds` to get them."""
        path = {"get": self.target.item_prefix, "list": self.target.list_path,
                "post": self.target.create_path}[mode]
        env = {**os.environ, "WRK_MODE": mode, "WRK_PATH": path, "WRK_HEADERS": str(self.folder / "headers"),
               "WRK_IDS": str(self.folder / "ids"), "WRK_BODIES": str(self.folder / "bodies"),
               "WRK_COUNT": str(count)}
        cmd = [wrk_path(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", f"{TIMEOUT}s",
               "-s", str(LUA), self.target.base]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              timeout=seconds + 120 + TIMEOUT)
        result = next((json.loads(text[5:]) for text in done.stdout.splitlines() if text.startswith("@wrk ")), None)
        if done.returncode or result is None:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        errors = {k: result[k] for k in ("connect", "read", "write", "status", "timeout") if result[k]}
        if errors:
            raise RuntimeError(f"{self.target.name}, {mode} at c{connections}: {errors} "
                               f"of {result['requests']} requests")
        return Load(result["requests"], result["duration_us"] / 1e6)
