"""Endpoints of the change feed (API.md 10): the feed as JSON pages or Server-Sent Events,
an entity's versions and its restore, and the cursor every list answer carries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from storeengine.core.documents import path_id
from storeengine.core.errors import BadRequest, NotFound, StoreError
from storeengine.core.jsonio import dumps
from storeengine.core.types import Doc
from storeengine.http.entities import context_and_store, entity_response
from storeengine.http.requests import authenticate, read_json
from storeengine.http.responses import json_response
from storeengine.http.streams import FeedEvents
from storeengine.model.access import Principal
from storeengine.model.query import parse_filter
from storeengine.model.schema import StoreSchema
from storeengine.store import history
from storeengine.store.feed import PAGE, Feed, cursor, parse_cursor, view
from storeengine.store.tail import Overflowed, Stream

MAX_LIMIT, DEFAULT_LIMIT = 10000, 1000
SCAN_PAGES = 10  # bound on the changes one request examines (the rest: `more`)
KEEP_ALIVE_SECONDS = 15
_PARAMS = {"since", "limit", "filter"}
YIELD_EVERY = 100  # events sent between two yields to other clients (a long backlog is not one turn)


async def changes(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    feed = ctx.service.feed
    if not feed.enabled:
        raise NotFound("The change feed is switched off")
    params = request.query_params
    if unknown := sorted(set(params) - _PARAMS) or [k for k in params if len(params.getlist(k)) > 1]:
        raise BadRequest(f"Unknown or repeated parameter: {unknown[0]}")
    # API.md 14: the changes through a filter, checked as `GET ?filter=` checks it for this caller.
    query = parse_filter(params["filter"], store.seen_by(principal)) if "filter" in params else None
    since_text = request.headers.get("last-event-id") or params.get("since")
    since = parse_cursor(store.name, since_text) if since_text else None
    limit = _limit(params.get("limit"))  # checked for the stream too, which has no pages to bound
    if "text/event-stream" in request.headers.get("accept", ""):
        assert ctx.tail is not None and ctx.streams is not None  # built whenever the feed is enabled
        release = ctx.streams.take(principal)  # 429 past the credential's streams
        reader = _Reader(principal, query)
        try:
            stream = await ctx.tail.open(store, since, reader.accepts)  # 410 / 400 before the stream starts
        except BaseException:
            release()
            raise

        def done() -> None:
            stream.close()
            release()

        return FeedEvents(_events(request, stream, reader), ended=stream.follower.ended, done=done,
                          ping=KEEP_ALIVE_SECONDS)
    shown, position, more = await _page(feed, principal, store, since, limit, query)
    return json_response({"changes": shown, "cursor": cursor(store.name, position), "more": more})


def _limit(raw: str | None, default: int = DEFAULT_LIMIT, high: int = MAX_LIMIT) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= high:
        raise BadRequest(f"limit must be an integer 1..{high}")
    return int(raw)


async def _page(feed: Feed, principal: Principal, store: StoreSchema, since: int | None,
                limit: int, query: Doc | None) -> tuple[list[Doc], int, bool]:
    """Up to `limit` changes the caller may see, the cursor after them, and whether more follow.
    The cursor passes changes the caller may not see, so a reader never rescans them."""
    shown: list[Doc] = []
    position, last = since, 0
    for _ in range(SCAN_PAGES):
        page = await feed.read(store, position, PAGE)
        for record in page.records:
            if (change := view(principal, store, record, query)) is not None:
                if len(shown) == limit:
                    return shown, last, True
                shown.append(change)
                last = record["seq"]
        position = page.position
        if not page.more:
            return shown, position, False
    return shown, page.position, True


class _Reader:
    """An SSE stream's caller, as of its last check: which live changes are worth buffering."""

    def __init__(self, principal: Principal, query: Doc | None) -> None:
        self.principal, self.query = principal, query  # the subscription's filter (API.md 14), if any

    def accepts(self, store: StoreSchema, record: Doc) -> bool:
        return view(self.principal, store, record, self.query) is not None


async def _events(request: Request, stream: Stream, reader: _Reader) -> AsyncIterator[ServerSentEvent]:
    sent = 0
    try:
        while True:
            try:
                batch = await stream.batch()
            except Overflowed:  # fell too far behind: the stream ends, the client resumes (Last-Event-ID)
                return
            if not batch:
                await stream.follower.arrived.wait()
                continue
            try:
                reader.principal = await authenticate(request)  # current rights; a revoked credential ends it
            except StoreError:
                return
            for record in batch:
                if (change := view(reader.principal, stream.tailer.store, record, reader.query)) is not None:
                    yield ServerSentEvent(dumps(change).decode(), event="change", id=change["seq"])
                    sent += 1
                    if sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # a send to a reading client need not yield
    finally:
        stream.close()


async def versions(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    entity_id = path_id(request.path_params["id"])
    params = request.query_params
    if unknown := sorted(set(params) - {"limit", "after"}) or [k for k in params if len(params.getlist(k)) > 1]:
        raise BadRequest(f"Unknown or repeated parameter: {unknown[0]}")
    limit = _limit(params.get("limit"), history.MAX_VERSIONS, history.MAX_VERSIONS)
    page, next_after = await history.versions(ctx.service, principal, store, entity_id, limit=limit,
                                              after=params.get("after"))
    return json_response(page, headers={"X-Next-After": next_after} if next_after is not None else None)


async def restore(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    body = await read_json(request)
    doc, created = await history.restore(ctx.service, principal, store, path_id(request.path_params["id"]), body)
    return entity_response(store.name, doc, 201 if created else 200)
