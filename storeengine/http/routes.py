"""The routes table: every URL the server answers."""

from __future__ import annotations

from starlette.routing import Route

from storeengine.http import auth, changes, entities


def routes() -> list[Route]:
    return [
        Route("/healthz", entities.health, methods=["GET"]),
        Route("/api/v1/auth", auth.login_session, methods=["POST"]),
        Route("/api/v1/auth/token", auth.login_token, methods=["POST"]),
        Route("/api/v1/auth/refresh", auth.refresh, methods=["POST"]),
        Route("/api/v1/auth/logout", auth.logout, methods=["POST"]),
        Route("/api/v1/auth/me", auth.me, methods=["GET"]),
        Route("/api/v1/auth/keys", auth.keys, methods=["GET", "POST"]),
        Route("/api/v1/auth/keys/{id}", auth.delete_key, methods=["DELETE"]),
        Route("/api/v1/_schemas", entities.schemas, methods=["GET"]),
        Route("/api/v1/{store}", entities.collection, methods=["GET", "POST"]),
        Route("/api/v1/{store}/_changes", changes.changes, methods=["GET"]),
        Route("/api/v1/{store}/{id}/_versions", changes.versions, methods=["GET"]),
        Route("/api/v1/{store}/{id}/_restore", changes.restore, methods=["POST"]),
        Route("/api/v1/{store}/{id}", entities.entity, methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route("/api/v1/{store}/{id}/acl", entities.entity_acl, methods=["PUT"]),
    ]
