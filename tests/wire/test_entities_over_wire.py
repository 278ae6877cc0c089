"""tests/test_entities.py, run unchanged against the MongoDB-wire server through real driver (PyMongo async) connections
(tests/wire/conftest.py's `settings` points the in-process app at a fresh database per test)."""

from tests.http.test_entities import *  # noqa: F403
