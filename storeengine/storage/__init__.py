"""Storage: the seam between the engine and a database, and its backends.

`api` is the seam (a few Protocols); `mongo` is MongoDB through the driver, `embedded` the
in-process database. This package is the only one that imports the database driver; it
imports nothing of ours but `core` and `settings`, and raises only StoreErrors.
"""
