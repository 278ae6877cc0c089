"""Which database the running code serves, for the few values that must name it (API.md 12).

"" is the public database; a tenant's id otherwise. Set by the HTTP tenant selection for a
request, and for a tenant's background tasks when they start, so that everything they spawn
inherits it (a ContextVar is copied into every task created under it). The change feed's cursors
carry it (store/feed.py), so one database's cursors are unknown in every other, without every
caller of the cursor functions having to pass the tenant along.
"""

from __future__ import annotations

from contextvars import ContextVar

database_scope: ContextVar[str] = ContextVar("database_scope", default="")

# True in work that no client waits for (a tenant's provisioning copy): the embedded database then
# queues even a short write for its writer thread instead of running it on the event loop's own
# (storage/sqlite/runner.py), where a write held up by the disk would hold every client up too.
background_work: ContextVar[bool] = ContextVar("background_work", default=False)
