"""The Eve app that bench/peers/eve.py serves with gunicorn, in Eve's own virtualenv (not ours).

`items` has the bench fields; `auth_field = owner` makes Eve store the caller's account id in each
document and add it to every lookup and list (Eve's per-user resources). A bearer token is checked
against the `accounts` collection once, then cached in this process (storeengine caches its token
checks too). Read from the environment: EVE_MONGO_URI, EVE_MONGO_DBNAME.
"""

from __future__ import annotations

import os
from typing import Any

from eve import Eve  # type: ignore[import-not-found]
from eve.auth import TokenAuth  # type: ignore[import-not-found]
from flask import current_app  # type: ignore[import-not-found]

LIST_SIZE = 1000


class Tokens(TokenAuth):  # type: ignore[misc]
    known: dict[str, Any] = {}  # noqa: RUF012 - one cache for the process, by design

    def check_auth(self, token: str, allowed_roles: Any, resource: Any, method: Any) -> bool:
        account = self.known.get(token)
        if account is None:
            account = current_app.data.driver.db["accounts"].find_one({"token": token})
            if account is None:
                return False
            self.known[token] = account
        self.set_request_auth_value(account["_id"])
        return True


SETTINGS = {
    "MONGO_URI": os.environ["EVE_MONGO_URI"],
    "MONGO_DBNAME": os.environ["EVE_MONGO_DBNAME"],
    "RESOURCE_METHODS": ["GET", "POST"],
    "ITEM_METHODS": ["GET"],
    "PAGINATION_LIMIT": LIST_SIZE,
    "PAGINATION_DEFAULT": 25,
    # No count() beside every page: storeengine's list counts only when asked (meta=true).
    "OPTIMIZE_PAGINATION_FOR_SPEED": True,
    "DATE_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "DOMAIN": {"items": {
        "auth_field": "owner",
        "schema": {"name": {"type": "string", "required": True}, "price": {"type": "number", "required": True},
                   "tags": {"type": "list", "schema": {"type": "string"}},
                   "listedAt": {"type": "datetime", "required": True}},
    }},
}

app = Eve(settings=SETTINGS, auth=Tokens)
