"""Realtime: Socket.IO connections, subscriptions and access-filtered change events.

`server` (authenticated connections, subscribe/unsubscribe), `live` (delivery of the feed's
tail to sockets: replays and room fan-out), `rechecks` (event-driven re-authentication of
sockets), `authbus` (auth changes between processes). `transport/` is the protocol machinery.
Imports `auth`, `store`, `model`, `core`; never `http`.
"""
