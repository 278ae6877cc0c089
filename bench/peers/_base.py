"""What every launcher needs: the install folder, free ports, logs, waiting for an answer, installs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
from _common import stop_process

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
# Everything a peer installs on first use lives here (ignored by git): node_modules, virtualenvs, logs.
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", BENCH / ".peers"))
LOGS = PEERS_DIR / "logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_file(name: str) -> IO[bytes]:
    """A fresh log file for one peer's output (bench/.peers/logs/<name>.log), named on failure."""
    LOGS.mkdir(parents=True, exist_ok=True)
    return (LOGS / f"{name}.log").open("wb")


def tail(name: str, lines: int = 20) -> str:
    path = LOGS / f"{name}.log"
    text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
    return f"(last lines of {path})\n" + "\n".join(text)


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    """Poll `ready` until it holds; fail at once if `proc` exits, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}\n{tail(name)}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within {timeout:.0f} s\n{tail(name)}")
        time.sleep(0.1)


def answers(url: str, ok: tuple[int, ...] = (200,)) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1).status_code in ok


@contextlib.contextmanager
def process(cmd: list[str], name: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A peer's process, its output in its log file; stopped (this one only) at the end."""
    with log_file(name) as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd)
        try:
            yield proc
        finally:
            stop_process(proc)


def stop_on_sigterm() -> None:
    """SIGTERM ends the script through its `finally` blocks, so that every peer it started is stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def npm_install(packages: dict[str, str]) -> Path:
    """node_modules with these packages (name -> version range), installed once; its path."""
    folder = PEERS_DIR / "node"
    stamp = folder / ("installed-" + "-".join(sorted(f"{n}@{v}" for n, v in packages.items())).replace("/", "_"))
    if not stamp.exists():
        folder.mkdir(parents=True, exist_ok=True)
        say(f"npm: installing {', '.join(packages)} into {folder} (first use)")
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"name": "storeengine-bench-peers", "private": true}\n')
        specs = [f"{name}@{version}" for name, version in packages.items()]
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *specs],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
        stamp.touch()
    return folder / "node_modules"


def venv_install(name: str, requirements: list[str]) -> Path:
    """A virtualenv of its own under bench/.peers/<name> holding `requirements`; its bin folder."""
    folder = PEERS_DIR / name
    stamp = folder / ".installed"
    wanted = "\n".join(requirements)
    if not stamp.exists() or stamp.read_text() != wanted:
        say(f"pip: installing {', '.join(requirements)} into {folder} (first use)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run([str(folder / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        *requirements], check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(wanted)
    return folder / "bin"
