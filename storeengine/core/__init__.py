"""Core: what every layer shares and that knows nothing of stores, HTTP or Socket.IO.

Errors (`StoreError` and its statuses), JSON in and out, the two stored formats (ObjectId,
date-time), document helpers and the system fields, RE2 regexes, shared type aliases.
Imports nothing of ours.
"""
