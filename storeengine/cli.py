"""Command line: `storeengine serve | user create | check-schemas`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bson import ObjectId

from storeengine.settings import Settings

if TYPE_CHECKING:
    from storeengine.http.context import Context
    from storeengine.model.schema import StoreSchema
    from storeengine.storage.api import StorageAPI
    from storeengine.storage.sqlite.folder import FolderLock


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from storeengine.core.errors import StoreError

    lock = None
    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "schema_dir": args.schemas}.items() if v}
    settings = Settings(**overrides)
    if settings.mongodb_uri is None:
        if args.workers > 1 and settings.data_dir == ":memory:":
            print("storeengine: --workers > 1 needs a STORE_DATA_DIR folder (or STORE_MONGODB_URI): with "
                  "STORE_DATA_DIR=:memory: each worker would have its own private data", file=sys.stderr)
            return 2
        try:
            lock = _claim_data_dir(settings)  # held until this function returns (the server stopped)
        except StoreError as exc:
            print(f"storeengine: {exc.message}", file=sys.stderr)
            return 2
    if args.workers > 1:
        if not settings.secret:
            # One secret for every worker, made once here, so a token from one is valid at all.
            os.environ["STORE_SECRET"] = secrets.token_urlsafe(32)
            print("storeengine: STORE_SECRET is not set: generated one for these workers; "
                  "tokens die with this server", file=sys.stderr)
        _several_workers(settings, args.workers)
    if args.schemas:
        os.environ["STORE_SCHEMA_DIR"] = str(args.schemas)
    _front_door(settings)
    # No websocket-level pings: Engine.IO has its own heartbeat (25 s / 60 s), and uvicorn's
    # extra ping per socket every 20 s would double the idle cost of many subscribers.
    # The access log is INFO: above that level it prints nothing, yet uvicorn would still format each
    # request's client and path for it (2-4 % of a GET by id's CPU), so it is off there.
    access_log = args.log_level.lower() in ("trace", "debug", "info")
    uvicorn.run("storeengine.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=args.workers, log_level=args.log_level, proxy_headers=False, ws_ping_interval=None,
                access_log=access_log)
    if lock is not None:
        lock.release()
    return 0


def _claim_data_dir(settings: Settings) -> FolderLock | None:
    """Lock STORE_DATA_DIR for this server and check its database before anything starts (a
    problem is one clear message, never a crash loop of workers); the app and every worker learn
    through STORE_DATA_DIR_OWNER that this process holds it. None for `:memory:`."""
    from storeengine.storage.sqlite import SqliteStorage

    lock = SqliteStorage.claim(settings)
    if lock is not None:
        folder = lock.path.parent
        os.environ["STORE_DATA_DIR"] = str(folder)
        os.environ["STORE_DATA_DIR_OWNER"] = str(os.getpid())
        print(f"storeengine: embedded database (SQLite) in {folder} (STORE_DATA_DIR); it keeps its data "
              "between runs", flush=True)
    return lock


def _front_door(settings: Settings) -> None:
    """Where to point a browser, and who to sign in as (the password is logged when the admin is made)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    print(f"storeengine: console at http://{host}:{settings.port}/ (API reference at /docs); "
          f"sign in as {settings.admin_login!r} with STORE_ADMIN_PASSWORD, or the random password "
          "logged when that admin is first created", flush=True)
def _several_workers(settings: Settings, workers: int) -> None:
    os.environ["STORE_WORKERS"] = str(workers)  # each worker reads it (Settings.workers)
    if settings.socketio_polling is None:
        print("storeengine: Socket.IO long-polling is off with several workers: clients connect with "
              "transports ['websocket'] (see docs/scaling.md)", file=sys.stderr)
    if not settings.socketio_queue:
        # Every worker tails the one feed, so events reach every subscriber either way; Redis only
        # makes other workers hear of a change, or of a revocation, at once instead of by polling.
        print("storeengine: STORE_SOCKETIO_QUEUE is not set: each worker finds the others' changes by polling "
              "the shared feed (every 0.25 s) and their revocations by polling the database (every second); "
              "a redis:// URL makes both immediate", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from storeengine.model.schema import check_dir

    directory = Path(args.dir) if args.dir else Settings().schema_dir
    report = check_dir(directory)
    bad = 0
    for name, problems in report.items():
        if problems:
            bad += 1
            for problem in problems:
                print(f"{name}: {problem}")
        else:
            print(f"{name}: ok")
    if not report:
        print(f"{directory}: no *.json files")
    if args.data:
        return _check_data(directory) or (1 if bad else 0)
    return 1 if bad else 0


def _check_data(directory: Path) -> int:
    """`check-schemas --data`: every stored entity of every store against its current file."""
    from storeengine.core.errors import StoreError

    ctx = _command_context("a new in-memory database holds no entities to check",
                           Settings(schema_dir=directory))
    if ctx is None:
        return 2
    ctx.registry.rescan()

    async def run() -> int:
        try:
            return sum([await _check_store(ctx.storage, store) for store in ctx.registry.all()])
        finally:
            await ctx.storage.close()  # on the loop: PyMongo's async client closes with `await`

    try:
        failing = asyncio.run(run())
    except StoreError as exc:
        print(f"storeengine: {json.dumps(exc.body())}", file=sys.stderr)
        return 1
    return 1 if failing else 0


async def _check_store(storage: StorageAPI, store: StoreSchema) -> int:
    """Check one store page by page, print its failures; a progress line on a terminal."""
    from storeengine.store.checks import check_entities

    tty = sys.stderr.isatty()

    def show(checked: int, invalid: int) -> None:
        if tty:
            print(f"\r{store.name}: {checked} checked, {invalid} failing", end="", file=sys.stderr, flush=True)

    after, total, done = None, 0, 0
    while True:
        report = await check_entities(storage, store, after=after,
                                      progress=functools.partial(_shifted, show, done, total))
        total, done = total + report.invalid, done + report.checked
        for entity in report.entities:
            for path, message in entity["fields"].items():
                print(f"{store.name}/{entity['_id']}: {path}: {message}")
        if report.next is None:
            break
        after = ObjectId(report.next)
    if tty:
        print("\r\033[K", end="", file=sys.stderr)
    print(f"{store.name}: {total} of {done} entities fail its schema" if total else f"{store.name}: {done} entities ok")
    return total


def _shifted(show: Callable[[int, int], None], done: int, total: int, checked: int, invalid: int) -> None:
    show(done + checked, total + invalid)


def _command_context(lost: str, settings: Settings | None = None) -> Context | None:
    """The context of a command that works beside the servers (not in one), on the database of
    the settings; None, said on stderr, where it cannot run: an in-memory database (what it wrote,
    `lost`, would go with the command), or an embedded folder a server holds."""
    from storeengine.app import build_context
    from storeengine.core.errors import StoreError

    settings = settings or Settings()
    if settings.mongodb_uri is None and settings.data_dir == ":memory:":
        print(f"storeengine: STORE_DATA_DIR=:memory:: {lost}", file=sys.stderr)
        return None
    try:
        ctx, _ = build_context(settings)  # the embedded database: refused while a server holds it
    except StoreError as exc:
        print(f"storeengine: {exc.message}", file=sys.stderr)
        return None
    return ctx


def _user_create(args: argparse.Namespace) -> int:
    from storeengine.auth.bootstrap import create_user
    from storeengine.core.errors import StoreError
    from storeengine.core.jsonio import dumps

    ctx = _command_context("a user in an in-memory database would be lost at once. "
                           "Use STORE_ADMIN_LOGIN / STORE_ADMIN_PASSWORD for such a server.")
    if ctx is None:
        return 2

    async def run() -> None:
        try:
            for store in ctx.registry.all():
                await ctx.service.ensure_indexes(store)
            user = await create_user(ctx.service, args.login, args.password, admin=args.admin,
                                     group_names=args.group)
        finally:
            await ctx.storage.close()
        print(dumps(user).decode())

    try:
        asyncio.run(run())
    except StoreError as exc:
        print(f"storeengine: {json.dumps(exc.body())}", file=sys.stderr)
        return 1
    return 0


def _tenant(args: argparse.Namespace) -> int:
    """`storeengine tenant create|list|delete` (API.md 12), on the database of the settings."""
    from storeengine.app import build_tenancy
    from storeengine.core.errors import StoreError
    from storeengine.core.jsonio import dumps

    ctx = _command_context("a tenant in an in-memory database would be lost at once")
    if ctx is None:
        return 2
    ctx.registry.rescan()  # the stores whose entities a copy takes
    tenancy = build_tenancy(ctx)

    async def run() -> None:
        from storeengine.auth.tenants import shown

        await tenancy.registry.ensure_indexes()
        if args.tenant_command == "list":
            for doc in await tenancy.registry.list():
                print(dumps(shown(doc)).decode())
        elif args.tenant_command == "delete":
            await tenancy.delete(args.name)
            print(dumps({"success": True}).decode())
        else:
            admin = {"login": args.admin_login, "password": args.admin_password}
            doc, key = await tenancy.create({"name": args.name, "admin": admin, "copy": not args.empty})
            copy = tenancy.copies.get(str(doc["_id"]))
            if copy is not None:
                await copy  # the command ends when the tenant is ready
            print(dumps({**shown(await tenancy.registry.get(args.name)), "key": key}).decode())

    async def run_and_close() -> None:
        try:
            await run()
        finally:
            await tenancy.close()
            await ctx.storage.close()

    try:
        asyncio.run(run_and_close())
    except StoreError as exc:
        print(f"storeengine: {json.dumps(exc.body())}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="storeengine", description="A schema-driven store server over MongoDB")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP + Socket.IO server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--schemas", help="schema directory (STORE_SCHEMA_DIR)")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-schemas", help="check every schema file; exit 1 on any problem")
    check.add_argument("dir", nargs="?")
    check.add_argument("--data", action="store_true",
                       help="also check every stored entity against its store's file (STORE_MONGODB_URI)")
    check.set_defaults(func=_check)
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", help="create a user")
    create.add_argument("--login", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--admin", action="store_true")
    create.add_argument("--group", action="append", default=[], metavar="NAME")
    create.set_defaults(func=_user_create)
    tenant = sub.add_parser("tenant", help="manage tenants (a database per client, API.md 12)")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    tcreate = tenant_sub.add_parser("create", help="create a tenant (a copy of the public data unless --empty)")
    tcreate.add_argument("name")
    tcreate.add_argument("--admin-login", required=True)
    tcreate.add_argument("--admin-password", required=True)
    tcreate.add_argument("--empty", action="store_true", help="start empty instead of copying the public data")
    tenant_sub.add_parser("list", help="list the tenants (without keys)")
    tdelete = tenant_sub.add_parser("delete", help="delete a tenant and drop its database")
    tdelete.add_argument("name")
    tenant.set_defaults(func=_tenant)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return int(args.func(args))
