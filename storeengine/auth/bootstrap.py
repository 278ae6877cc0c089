"""Creating users outside the API: the first admin, and `storeengine user create`."""

from __future__ import annotations

import logging
import secrets

from storeengine.core.errors import Conflict
from storeengine.core.types import Doc
from storeengine.model.access import SYSTEM
from storeengine.store.service import EntityService

log = logging.getLogger(__name__)


async def bootstrap_admin(service: EntityService, login: str, password: str | None) -> None:
    """With no user in the database, create an admin (a random password is logged once)."""
    users = service.storage.collection("users")
    if await users.find_one({}, {"_id": 1}) is not None:
        return
    chosen = password or secrets.token_urlsafe(12)
    try:
        body: Doc = {"login": login, "password": chosen, "roles": ["admin"]}
        await service.create(SYSTEM, service.registry.get("users"), body)
    except Conflict:
        return  # another process created it first
    if password:
        log.warning("created the first admin %r (password from STORE_ADMIN_PASSWORD)", login)
    else:
        log.warning("created the first admin %r with the random password %s (shown once; "
                    "set STORE_ADMIN_PASSWORD to choose it)", login, chosen)


async def create_user(service: EntityService, login: str, password: str, *, admin: bool,
                      group_names: list[str]) -> Doc:
    """Create a user, creating any named group that does not exist yet."""
    groups = service.storage.collection("groups")
    group_ids = []
    for name in group_names:
        found = await groups.find_one({"name": name}, {"_id": 1})
        if found is None:
            found = await service.create(SYSTEM, service.registry.get("groups"), {"name": name})
        group_ids.append(str(found["_id"]))
    body: Doc = {"login": login, "password": password, "groups": group_ids, "roles": ["admin"] if admin else []}
    return await service.create(SYSTEM, service.registry.get("users"), body)
