"""Model: what a store is and who may do what in it, with no I/O.

Access rules (`access`: each `x-acl` rule defined once, as a query filter, an in-memory check
and Socket.IO rooms), the store schema and its registry (`schema`: files compiled once,
hot-reloaded), validation messages, and list queries (`query`: parameters -> a whitelisted
MongoDB query). Imports only `core`.
"""
