"""The routes table: every URL the server answers."""

from __future__ import annotations

from starlette.convertors import StringConvertor, register_url_convertor
from starlette.routing import BaseRoute, Route

from storeengine.http import auth, changes, checks, entities, nested, pages, tenants
from storeengine.http.guards import with_method_guards
from storeengine.http.requests import authenticated, public, store_write

# The fixed paths under /api/v1 that the generic store routes must never take.
RESERVED = ("auth", "_schemas", "_openapi.json", "_tenants")


class StoreName(StringConvertor):
    """A path segment naming a store: any segment but the reserved ones. With it the generic
    routes cannot take a fixed path, so they come first in the table: Starlette tries routes
    in order, and a GET by id matched 27 patterns before its own (a twentieth of its time)."""

    regex = "(?!(?:" + "|".join(name.replace(".", r"\.") for name in RESERVED) + ")(?:/|$))[^/]+"


register_url_convertor("store", StoreName())


class ChildName(StringConvertor):
    """The `:child` segment of a nested list: not `acl` nor an `_` path (`_versions`, `_restore`)."""

    regex = "(?!_|acl(?:/|$))[^/]+"


register_url_convertor("child", ChildName())


def routes() -> list[BaseRoute]:
    """`public` answers anyone; `authenticated` answers 401 before anything else."""
    table: list[BaseRoute] = [
        Route("/api/v1/{store:store}", authenticated(store_write(entities.collection)), methods=["GET", "POST"]),
        Route("/api/v1/{store:store}/_changes", authenticated(changes.changes), methods=["GET"]),
        Route("/api/v1/{store:store}/_aggregate", authenticated(entities.aggregate), methods=["GET"]),
        Route("/api/v1/{store:store}/{id}", authenticated(store_write(entities.entity)),
              methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route("/api/v1/{store:store}/{id}/_versions", authenticated(changes.versions), methods=["GET"]),
        Route("/api/v1/{store:store}/{id}/_restore", authenticated(store_write(changes.restore)), methods=["POST"]),
        Route("/api/v1/{store:store}/{id}/acl", authenticated(store_write(entities.entity_acl)), methods=["PUT"]),
        Route("/api/v1/{store:store}/{id}/{child:child}", authenticated(nested.nested), methods=["GET"]),
        Route("/healthz", public(entities.health), methods=["GET"]),
        *pages.routes(),
        Route("/api/v1/auth", public(auth.login_session), methods=["POST"]),
        Route("/api/v1/auth/token", public(auth.login_token), methods=["POST"]),
        Route("/api/v1/auth/refresh", public(auth.refresh), methods=["POST"]),
        Route("/api/v1/auth/logout", authenticated(auth.logout), methods=["POST"]),
        Route("/api/v1/auth/me", authenticated(auth.me), methods=["GET"]),
        Route("/api/v1/auth/keys", authenticated(auth.keys), methods=["GET", "POST"]),
        Route("/api/v1/auth/keys/{id}", authenticated(auth.delete_key), methods=["DELETE"]),
        Route("/api/v1/_schemas", authenticated(entities.schemas), methods=["GET"]),
        Route("/api/v1/_tenants", authenticated(tenants.collection), methods=["GET", "POST"]),
        Route("/api/v1/_tenants/{name}", authenticated(tenants.tenant), methods=["GET", "DELETE"]),
        Route("/api/v1/_tenants/{name}/key", authenticated(tenants.rotate_key), methods=["POST"]),
        Route("/api/v1/_schemas/{store}/_check", authenticated(checks.check), methods=["GET", "HEAD", "POST"]),
    ]
    return with_method_guards(table)
