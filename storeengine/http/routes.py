"""The routes table: every URL the server answers."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from storeengine.http import auth, changes, console, entities
from storeengine.http.guards import with_method_guards
from storeengine.http.requests import authenticated, public


def routes() -> list[BaseRoute]:
    """`public` answers anyone; `authenticated` answers 401 before anything else."""
    table: list[BaseRoute] = [
        Route("/healthz", public(entities.health), methods=["GET"]),
        *console.routes(),  # before /api/v1/{store}: it names /api/v1/_openapi.json
        Route("/api/v1/auth", public(auth.login_session), methods=["POST"]),
        Route("/api/v1/auth/token", public(auth.login_token), methods=["POST"]),
        Route("/api/v1/auth/refresh", public(auth.refresh), methods=["POST"]),
        Route("/api/v1/auth/logout", authenticated(auth.logout), methods=["POST"]),
        Route("/api/v1/auth/me", authenticated(auth.me), methods=["GET"]),
        Route("/api/v1/auth/keys", authenticated(auth.keys), methods=["GET", "POST"]),
        Route("/api/v1/auth/keys/{id}", authenticated(auth.delete_key), methods=["DELETE"]),
        Route("/api/v1/_schemas", authenticated(entities.schemas), methods=["GET"]),
        Route("/api/v1/{store}", authenticated(entities.collection), methods=["GET", "POST"]),
        Route("/api/v1/{store}/_changes", authenticated(changes.changes), methods=["GET"]),
        Route("/api/v1/{store}/{id}/_versions", authenticated(changes.versions), methods=["GET"]),
        Route("/api/v1/{store}/{id}/_restore", authenticated(changes.restore), methods=["POST"]),
        Route("/api/v1/{store}/{id}", authenticated(entities.entity), methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route("/api/v1/{store}/{id}/acl", authenticated(entities.entity_acl), methods=["PUT"]),
    ]
    return with_method_guards(table)
