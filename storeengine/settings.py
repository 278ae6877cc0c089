"""One immutable settings model, read once from the environment (prefix STORE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STORE_", frozen=True, extra="ignore")

    mongodb_uri: str | None = None
    database: str = "storeengine"
    # The embedded database (STORE_MONGODB_URI unset): SQLite files in this folder, or ":memory:".
    data_dir: str = "./data"
    # Set by `serve --workers N` for its workers: the pid of the server that holds the folder's lock.
    data_dir_owner: int | None = None
    schema_dir: Path = Path("schemas")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # How long the driver looks for a server before a request answers 503.
    server_selection_timeout_ms: int = Field(default=2000, ge=50)
    # Upper bound on any one read (find, count): a costly filter answers 503, it does not run on.
    query_timeout_ms: int = Field(default=10000, ge=100)
    # How often the schema folder is rescanned (hot reload is promised within 2 s).
    schema_poll_seconds: float = Field(default=0.5, gt=0, le=1.5)

    # HS256 wants a key of at least 32 bytes (RFC 7518 3.2).
    secret: str | None = Field(default=None, min_length=32)
    token_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    refresh_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=1)
    session_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    token_issuer: str = "storeengine"
    cookie_secure: bool = False
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    admin_login: str = "admin"
    admin_password: str | None = None
    # Bound on how stale a cached credential lookup may be in another process.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=5.0)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # argon2 cost; tests lower it, production keeps the library's defaults.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)

    socketio_queue: str | None = None
    # Engine.IO heartbeat (both protocol versions); tests shorten it.
    socketio_ping_interval_seconds: int = Field(default=25, ge=1)
    socketio_ping_timeout_seconds: int = Field(default=60, ge=1)
    # `serve --workers N` sets it: with several workers a polling client's requests reach different
    # ones, so long-polling is refused unless STORE_SOCKETIO_POLLING says otherwise (sticky sessions).
    workers: int = Field(default=1, ge=1)
    socketio_polling: bool | None = None

    @property
    def polling_allowed(self) -> bool:
        return self.socketio_polling if self.socketio_polling is not None else self.workers == 1
    # How long changes stay in a store's feed (stores with "x-history": true keep them for ever).
    changes_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    # Only for side-by-side benchmarks: no feed, no cursors, events straight from the write path.
    changes_feed: bool = True
    # Concurrent SSE streams (`_changes` with Accept: text/event-stream) one credential may hold
    # open in one process; past it, 429. Browsers open at most 6 connections per host anyway.
    sse_streams_per_credential: int = Field(default=8, ge=1)
    # API.md 12: writes to the public database's stores by anyone but its admins -> 403 (tenants
    # are the clients' databases).
    public_readonly: bool = False
    # A tenant's services in one process (API.md 12) are closed after this long without a request
    # or a socket, and the least recently used idle ones beyond `tenants_open_max`; reopened on demand.
    tenant_idle_seconds: float = Field(default=300.0, gt=0)
    tenants_open_max: int = Field(default=200, ge=1)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value
