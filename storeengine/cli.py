"""Command line: `storeengine serve | user create | check-schemas`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from storeengine.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "schema_dir": args.schemas}.items() if v}
    settings = Settings(**overrides)
    if args.workers > 1:
        if settings.mongodb_uri is None:
            print("storeengine: --workers > 1 needs STORE_MONGODB_URI: the embedded database lives inside "
                  "one process, so each worker would have its own private data", file=sys.stderr)
            return 2
        if not settings.secret:
            # One secret for every worker, made once here, so a token from one is valid at all.
            os.environ["STORE_SECRET"] = secrets.token_urlsafe(32)
            print("storeengine: STORE_SECRET is not set: generated one for these workers; "
                  "tokens die with this server", file=sys.stderr)
    if args.schemas:
        os.environ["STORE_SCHEMA_DIR"] = str(args.schemas)
    # No websocket-level pings: Engine.IO has its own heartbeat (25 s / 60 s), and uvicorn's
    # extra ping per socket every 20 s would double the idle cost of many subscribers.
    uvicorn.run("storeengine.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=args.workers, log_level=args.log_level, proxy_headers=False, ws_ping_interval=None)
    return 0


def _check(args: argparse.Namespace) -> int:
    from storeengine.schemas import check_dir

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
    return 1 if bad else 0


def _user_create(args: argparse.Namespace) -> int:
    from storeengine.app import build_context
    from storeengine.auth.bootstrap import create_user
    from storeengine.errors import StoreError
    from storeengine.jsonio import dumps

    settings = Settings()
    if settings.mongodb_uri is None:
        print("storeengine: STORE_MONGODB_URI is not set; a user in the embedded database would be lost "
              "at once. Use STORE_ADMIN_LOGIN / STORE_ADMIN_PASSWORD for the embedded server.", file=sys.stderr)
        return 2
    ctx, _ = build_context(settings)

    async def run() -> None:
        for store in ctx.registry.all():
            await ctx.service.ensure_indexes(store)
        user = await create_user(ctx.service, args.login, args.password, admin=args.admin, group_names=args.group)
        print(dumps(user).decode())

    try:
        asyncio.run(run())
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
    check.set_defaults(func=_check)
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", help="create a user")
    create.add_argument("--login", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--admin", action="store_true")
    create.add_argument("--group", action="append", default=[], metavar="NAME")
    create.set_defaults(func=_user_create)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return int(args.func(args))
