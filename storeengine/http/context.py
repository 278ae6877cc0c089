"""What every endpoint needs, built once by `create_app` and kept on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from storeengine.auth.service import AuthService
from storeengine.http.openapi import DocumentCache
from storeengine.http.streams import StreamSlots
from storeengine.model.schema import Registry
from storeengine.settings import Settings
from storeengine.storage.api import StorageAPI
from storeengine.store.check_cache import SchemaChecks
from storeengine.store.service import EntityService
from storeengine.store.tail import FeedTail


@dataclass(frozen=True)
class Context:
    settings: Settings
    storage: StorageAPI
    registry: Registry
    service: EntityService
    auth: AuthService
    tail: FeedTail | None = None  # the feed's live tail (SSE streams), None with the feed off
    streams: StreamSlots | None = None  # the SSE streams open per credential, with the feed
    openapi: DocumentCache = field(init=False)  # rebuilt only when the schemas change
    checks: SchemaChecks = field(init=False)  # each store's entities against its current schema (console)

    def __post_init__(self) -> None:
        object.__setattr__(self, "openapi", DocumentCache(self.registry))
        object.__setattr__(self, "checks", SchemaChecks(self.storage))


SCOPE_KEY = "storeengine.ctx"  # a tenant's Context, put in the scope by http/tenancy.TenantSelect


def context(conn: HTTPConnection) -> Context:
    """The Context serving this request: its tenant's, else the public database's."""
    ctx: Context | None = conn.scope.get(SCOPE_KEY)
    return ctx if ctx is not None else public_context(conn)


def public_context(conn: HTTPConnection) -> Context:
    ctx: Context = conn.app.state.ctx
    return ctx
