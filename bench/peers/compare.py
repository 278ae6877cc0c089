"""The phases every peer goes through, the side-by-side table, and the ratios against targets.

Phases, with wrk (load.py) for every peer alike: GET by id at 32 connections (a random seeded id
per request), the list of 1,000 at one connection and at 32, and POST at 32. Each measured run is a
counted one after a warm-up of its own: about BENCH_PEER_SECONDS' worth of answers at the warm-up's
rate (POST: a fixed number). Peers take turns phase by phase (GET for every peer, then the list for
every peer, ...), each phase BENCH_PEER_ROUNDS times, each peer keeping its best round, so that drift
on a shared machine favours no one. CPU is read from /proc before and after each measured run: the
peer's own processes, and the database's when it is a separate process (jongodb).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from peers.load import Driver
from peers.procstat import cpu_seconds
from peers.seeding import check, in_database, through_api
from peers.target import LIST_SIZE, Target

SECONDS = float(os.environ.get("BENCH_PEER_SECONDS", "5"))
COUNT = int(os.environ.get("BENCH_PEER_COUNT", "3000"))
POSTS = int(os.environ.get("BENCH_PEER_POSTS", "500"))
# Rounds of each timed phase (peers in turn each round, every other round in reverse); each peer keeps
# its best round, which on a machine shared with other work is the one least disturbed.
ROUNDS = int(os.environ.get("BENCH_PEER_ROUNDS", "2"))
CONNECTIONS = 32


@dataclass(frozen=True)
class Phase:
    """One measured figure: `count` > 0 makes it a counted run (POST), otherwise a timed one."""

    key: str
    mode: str
    connections: int
    label: str
    unit: str  # req/s (higher is better) or ms/page (lower is better)
    count: int = 0

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "req/s"


GET = Phase("get", "get", CONNECTIONS, f"GET by id, c{CONNECTIONS}", "req/s")
LIST1 = Phase("list1", "list", 1, "list of 1,000, one client", "ms/page")
LIST32 = Phase("list32", "list", CONNECTIONS, f"list of 1,000, c{CONNECTIONS}", "ms/page")
# A fixed number of POSTs, not a fixed time: every peer's store then grows by the same number of
# documents, so a database whose insert slows with its size weighs the same on each.
POST = Phase("post", "post", CONNECTIONS, f"POST x {POSTS:,}, c{CONNECTIONS}", "req/s", POSTS)
READS = [GET, LIST1, LIST32]
PHASES = [*READS, POST]
Figures = dict[str, dict[str, float]]  # peer name -> figure key -> value


def method() -> str:
    """The load's description, for the scripts' headers."""
    return (f"wrk, one thread, peers in turn phase by phase, best of {ROUNDS} rounds of about {SECONDS:.0f} s\n"
            f"  (counted runs, each after its own 1 s warm-up); POST: {POST.count:,} each after "
            f"{2 * POST.connections} of warm-up")


def prepare(targets: list[Target], count: int = COUNT, uri: str | None = None) -> dict[str, float]:
    """Seed `count` entities into each peer, in the database at `uri` where the peer has a MongoDB
    collection, else through its own API (seeding.py); check its answers; seconds each."""
    taken = {}
    by_name = {target.name: target for target in targets}
    for target in targets:
        start = time.perf_counter()
        if target.serves_of is not None:  # reads another peer's entities: its ids (seeded before it)
            target.ids = by_name[target.serves_of].ids
        elif uri and target.stored_in:
            target.ids = in_database(target, uri, count)
        else:
            target.ids = asyncio.run(through_api(target, count))
        taken[target.name] = time.perf_counter() - start
        if count >= LIST_SIZE:
            check(target)
    return taken


def measure(targets: list[Target], phases: list[Phase], db_pids: list[int] | None = None,
            figures: Figures | None = None, rounds: int = ROUNDS) -> Figures:
    """Each phase for every peer in turn, `rounds` times; per peer its best round's rate or ms per page,
    with that round's CPU ms per request (of the peer's processes, and of the database's when it runs
    apart: `db_pids`)."""
    figures = figures if figures is not None else {}
    drivers = [Driver(t) for t in targets]
    try:
        for phase in phases:
            for index in range(rounds):
                # Every other round in the reverse order: the one who goes first after another peer's
                # load (or last, into the next phase) is not always the same (storeengine beside a
                # baseline tree showed 8-10 % more CPU per GET going first, 6 % less alternating).
                for driver in drivers if index % 2 == 0 else drivers[::-1]:
                    _phase(driver, phase, db_pids or [], figures.setdefault(driver.target.name, {}))
    finally:
        for driver in drivers:
            driver.close()
    return figures


def _phase(driver: Driver, phase: Phase, db_pids: list[int], out: dict[str, float]) -> None:
    """Warm up, then a counted run: `phase.count` answers, or about SECONDS' worth at the warm-up's rate.
    CPU is read before it and once the peer is idle again after it, and shared among every request it
    handled: the counted ones and the connections - 1 still in flight when wrk stopped."""
    mode, connections = phase.mode, phase.connections
    if phase.count:
        driver.run(mode, connections, 120, count=2 * connections)
        count = phase.count
    else:
        warm = driver.run(mode, connections, 1)
        count = max(2 * connections, round(warm.rate * SECONDS))
    settle(driver.target.pids + db_pids)
    cpu, db_cpu = cpu_seconds(driver.target.pids), cpu_seconds(db_pids)
    load = driver.run(mode, connections, max(60, 4 * SECONDS), count=count)
    settle(driver.target.pids + db_pids)
    handled = load.requests + connections - 1
    value = load.rate if phase.higher_is_better else load.ms_each
    if phase.key in out and (value < out[phase.key] if phase.higher_is_better else value > out[phase.key]):
        return  # an earlier round was better
    out[phase.key] = value
    out[f"{phase.key}_cpu_ms"] = (cpu_seconds(driver.target.pids) - cpu) * 1000 / handled
    if db_pids:
        out[f"{phase.key}_db_cpu_ms"] = (cpu_seconds(db_pids) - db_cpu) * 1000 / handled


def settle(pids: list[int], longest: float = 15) -> None:
    """Wait until these processes use under 2 % of a core over 0.2 s (the requests a stopped run left in
    flight are done), so that they neither spill into the next peer's run nor miss from this one's CPU."""
    deadline = time.monotonic() + longest
    before = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_seconds(pids)
        if now - before < 0.004:
            return
        before = now


def table(figures: Figures, db_name: str | None = None) -> None:
    names = list(figures)
    width = max(14, *(len(n) + 2 for n in names))
    print(f"  {'':<38}" + "".join(f"{n:>{width}}" for n in names))

    def row(label: str, key: str, fmt: str) -> None:
        cells = [fmt.format(figures[n][key]) if key in figures[n] else "-" for n in names]
        print(f"  {label:<38}" + "".join(f"{c:>{width}}" for c in cells))

    for phase in PHASES:
        row(f"{phase.label} ({phase.unit})", phase.key, "{:,.0f}" if phase.higher_is_better else "{:,.1f}")
        row("   server CPU, ms per request", f"{phase.key}_cpu_ms", "{:.2f}")
        if db_name:
            row(f"   {db_name} CPU, ms per request", f"{phase.key}_db_cpu_ms", "{:.2f}")


@dataclass
class Ratio:
    """ours / theirs for one figure, against a target: at least `target` for rates, at most for times."""

    phase: Phase
    ours: str
    theirs: str
    target: float

    def value(self, figures: Figures) -> float | None:
        key = self.phase.key
        if key not in figures.get(self.ours, {}) or key not in figures.get(self.theirs, {}):
            return None
        return figures[self.ours][key] / figures[self.theirs][key]

    def cpu(self, figures: Figures) -> float | None:
        """ours / theirs for the server's CPU per request in the same phase: steadier than wall time
        on a machine shared with other work."""
        key = f"{self.phase.key}_cpu_ms"
        ours, theirs = figures.get(self.ours, {}).get(key), figures.get(self.theirs, {}).get(key)
        return ours / theirs if ours and theirs else None

    def describe(self) -> tuple[str, str]:
        higher = self.phase.higher_is_better
        return (f"{self.phase.label}: {self.ours} / {self.theirs} {'req/s' if higher else 'time'}",
                (">= " if higher else "<= ") + f"{self.target}")

    def ok(self, value: float) -> bool:
        return value >= self.target if self.phase.higher_is_better else value <= self.target


def ratios(figures: Figures, wanted: list[Ratio]) -> list[dict[str, Any]]:
    """Print one line per ratio, `ok` or a loud `MISSED`; the same as dicts for the @result line."""
    out = []
    for ratio in wanted:
        what, target = ratio.describe()
        value = ratio.value(figures)
        if value is None:
            print(f"  {what:<62} {'-':>7}    (not measured)")
            continue
        ok = ratio.ok(value)
        mark = "ok" if ok else "!!! MISSED !!!"
        cpu = ratio.cpu(figures)
        print(f"  {what:<62} {value:>6.2f}x   target {target:<6} {mark:<15}" +
              (f"(server CPU per request {cpu:.2f}x theirs)" if cpu else ""))
        out.append({"ratio": what, "value": round(value, 3), "target": target, "ok": ok,
                    "cpu_ratio": round(cpu, 3) if cpu else None})
    missed = [r for r in out if not r["ok"]]
    if missed:
        print(f"  !!! {len(missed)} of {len(out)} targets MISSED !!!")
    return out


def result_line(figures: Figures, ratio_rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    if os.environ.get("BENCH_JSON"):
        flat = {f"{peer}.{key}": round(value, 3) for peer, values in figures.items() for key, value in values.items()}
        print("@result " + json.dumps({**flat, **extra, "ratios": ratio_rows,
                                       "missed": sum(not r["ok"] for r in ratio_rows)}), flush=True)


def untargeted(figures: Figures, ours: str, theirs: str, title: str, phases: list[Phase] = PHASES) -> None:
    """ours / theirs phase by phase with the CPU ratio, no target: what a change bought, or what a
    peer's cost is made of."""
    print(f"  {title}:")
    for phase in phases:
        ratio = Ratio(phase, ours, theirs, 1.0)
        value, cpu = ratio.value(figures), ratio.cpu(figures)
        if value is not None and cpu is not None:
            print(f"  {ratio.describe()[0]:<62} {value:>6.2f}x   (server CPU per request {cpu:.2f}x)")


def against_baseline(figures: Figures, ours: str, baseline: str = "baseline") -> None:
    untargeted(figures, ours, baseline, f"{ours} / {baseline} (this tree / BENCH_BASELINE), same run")
