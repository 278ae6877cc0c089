"""Store: the entity operations over storage, with validation, access rules and the feed.

`service` (create/read/list/update/delete), `feed` (the change feed and its argument),
`history` (versions and restore), `tail` (following the feed live, for SSE and Socket.IO).
Imports `model`, `storage` and `core`; knows nothing of HTTP or Socket.IO.
"""
