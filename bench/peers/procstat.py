"""CPU time of a process and its descendants, from /proc/<pid>/stat (utime + stime, in seconds)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) is index 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = _stat(int(entry.name))
                if fields:
                    tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes and all their descendants (live ones: what exited is gone)."""
    tree = _children()
    todo, seen, total = list(pids), set[int](), 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        todo += tree.get(pid, [])
    return total / TICK
