"""Logins, sessions, tokens, refresh tokens and API keys, all kept in MongoDB."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId

from storeengine.auth.cache import TTLCache
from storeengine.auth.passwords import Passwords, digest
from storeengine.auth.throttle import LoginThrottle
from storeengine.auth.tokens import TokenIssuer
from storeengine.core.documents import path_id
from storeengine.core.errors import Invalid, NotFound, Unauthorized
from storeengine.core.formats import utcnow
from storeengine.core.jsonio import epoch_ms
from storeengine.core.types import Doc
from storeengine.model.access import Credential, Principal
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import CollectionAPI, StorageAPI

_CREDENTIALS = ("error_credentials",)
_USER_FIELDS = {"groups": 1, "roles": 1, "active": 1, "_auth": 1}


@dataclass(frozen=True)
class AuthChange:
    """What a revocation or user write touched: a user (any change to them), a credential
    (its session id hash, key hash or token jti), or both. Sockets depending on it are re-checked."""

    user_id: str | None = None
    credential_id: str | None = None


@dataclass(frozen=True)
class UserState:
    """What authentication needs of a user; one cached lookup per user."""

    user_id: ObjectId
    groups: tuple[ObjectId, ...]
    roles: frozenset[str]
    active: bool
    not_before_ms: int
    keep: frozenset[str]
    revoked: frozenset[str]

    @classmethod
    def from_doc(cls, doc: Doc) -> UserState:
        state = doc.get("_auth") or {}
        return cls(
            user_id=doc["_id"], groups=tuple(doc.get("groups") or ()), roles=frozenset(doc.get("roles") or ()),
            active=doc.get("active", True) is not False, not_before_ms=int(state.get("notBefore", 0)),
            keep=frozenset(state.get("keep") or ()), revoked=frozenset(r["jti"] for r in state.get("revoked") or ()),
        )

    def principal(self, credential: Credential) -> Principal:
        return Principal(self.user_id, self.groups, self.roles, credential)


class AuthService:
    def __init__(self, storage: StorageAPI, passwords: Passwords, tokens: TokenIssuer, throttle: LoginThrottle, *,
                 session_ttl: int, refresh_ttl: int, cache_seconds: float, tenant: str | None = None) -> None:
        # A tenant's (API.md 12): every credential issued here names it, so that it selects the
        # tenant by itself (credentials.tenant_of) and works nowhere else.
        self.tenant = tenant
        self._tag = "" if tenant is None else f"{tenant}."
        self.users = storage.collection("users")
        self.sessions = storage.collection("_sessions")
        self.refresh_tokens = storage.collection("_refresh_tokens")
        self.keys = storage.collection("_api_keys")
        self.passwords, self.tokens, self.throttle = passwords, tokens, throttle
        self.session_ttl = timedelta(seconds=session_ttl)
        self.refresh_ttl = timedelta(seconds=refresh_ttl)
        self._users: TTLCache[UserState] = TTLCache(cache_seconds)
        self._credentials: TTLCache[tuple[ObjectId, datetime | None]] = TTLCache(cache_seconds)
        # Called after any revocation or user write made by this process, with what it touched
        # (Socket.IO re-checks the connections that depend on it).
        self.revocation_listeners: list[Callable[[AuthChange], None]] = []

    async def ensure_indexes(self) -> None:
        for coll in (self.sessions, self.refresh_tokens):
            await coll.ensure_index([("user", 1)])
            await coll.ensure_index([("expiresAt", 1)], expire_after=0)
        await self.keys.ensure_index([("user", 1)])
        await self.keys.ensure_index([("hash", 1)], unique=True)
        await self.throttle.ensure_indexes()

    # --- authenticating a request ---------------------------------------------------------

    async def authenticate(self, *, bearer: str | None = None, api_key: str | None = None,
                           session: str | None = None) -> Principal:
        if bearer is not None:
            claims = self.tokens.decode(bearer)
            if claims.tenant != self.tenant:
                raise Unauthorized("Token of another database")
            state = await self._state(path_id(claims.user_id))
            if claims.jti in state.revoked or (claims.issued_ms < state.not_before_ms and claims.jti not in state.keep):
                raise Unauthorized("Token revoked")
            return state.principal(Credential("token", claims.jti))
        if api_key is not None:
            key_hash = digest(api_key)
            user_id, _ = await self._lookup(self.keys, {"hash": key_hash}, key_hash)
            return (await self._state(user_id)).principal(Credential("key", key_hash))
        if session is not None:
            sid_hash = digest(session)
            user_id, expires = await self._lookup(self.sessions, {"_id": sid_hash}, sid_hash)
            if expires is not None and expires <= utcnow():
                raise Unauthorized("Session expired")
            return (await self._state(user_id)).principal(Credential("session", sid_hash))
        raise Unauthorized("Authentication required")

    async def _lookup(self, coll: CollectionAPI, query: Doc, cache_key: str) -> tuple[ObjectId, datetime | None]:
        hit = self._credentials.get(cache_key)
        if hit is None:
            doc = await coll.find_one(query, {"user": 1, "expiresAt": 1})
            if doc is None:
                raise Unauthorized("Invalid or revoked credentials")
            hit = (doc["user"], doc.get("expiresAt"))
            self._credentials.put(cache_key, hit)
        return hit

    async def _state(self, user_id: ObjectId | None) -> UserState:
        if user_id is None:
            raise Unauthorized("Invalid token subject")
        state = self._users.get(str(user_id))
        if state is None:
            doc = await self.users.find_one({"_id": user_id}, _USER_FIELDS)
            if doc is None:
                raise Unauthorized("Unknown user")
            state = UserState.from_doc(doc)
            self._users.put(str(user_id), state)
        if not state.active:
            raise Unauthorized("User is inactive")
        return state

    # --- logging in -----------------------------------------------------------------------

    async def login(self, body: Doc) -> Doc:
        """The user for a login + password, or 401 / 429; 400 when either is missing."""
        missing = {k: "is required" for k in ("login", "password") if not isinstance(body.get(k), str) or not body[k]}
        if missing:
            raise Invalid(fields=missing)
        login, password = body["login"], body["password"]
        await self.throttle.attempt(login)  # counted before the check: 429 past the limit
        user = await self.users.find_one({"login": login})
        ok = await self.passwords.verify(user.get("password") if user else None, password)
        if not ok or user is None:
            raise Unauthorized("Wrong login or password", extra_tags=_CREDENTIALS)
        if user.get("active", True) is False:
            raise Unauthorized("User is inactive", extra_tags=_CREDENTIALS)
        await self.throttle.succeeded(login)
        return user

    async def start_session(self, user_id: ObjectId) -> tuple[str, datetime]:
        sid = self._tag + secrets.token_urlsafe(32)
        expires = utcnow() + self.session_ttl
        await self.sessions.insert({"_id": digest(sid), "user": user_id, "createdAt": utcnow(), "expiresAt": expires})
        return sid, expires

    async def issue_tokens(self, user_id: ObjectId) -> Doc:
        token, claims = self.tokens.issue(str(user_id), self.tenant)
        refresh = self._tag + secrets.token_urlsafe(32)
        refresh_expires = utcnow() + self.refresh_ttl
        await self.refresh_tokens.insert(
            {"_id": digest(refresh), "user": user_id, "jti": claims.jti, "expiresAt": refresh_expires})
        return {
            # issuedAt is the JWT's `iat` in ms, so that expiresAt - issuedAt is the lifetime exactly.
            "success": True, "type": "access", "token": token, "issuedAt": claims.expires_ms - self.tokens.ttl * 1000,
            "expiresAt": claims.expires_ms, "refreshToken": refresh, "refreshExpiresAt": epoch_ms(refresh_expires),
        }

    async def refresh(self, body: Doc) -> Doc:
        token = body.get("refreshToken")
        if not isinstance(token, str) or not token:
            raise Invalid(fields={"refreshToken": "is required"})
        # Deleting as we read makes a refresh token single-use even under concurrent calls.
        doc = await self.refresh_tokens.find_one_and_delete({"_id": digest(token)})
        if doc is None or doc["expiresAt"] <= utcnow():
            raise Unauthorized("Invalid or used refresh token")
        await self._state(doc["user"])
        return await self.issue_tokens(doc["user"])

    async def logout(self, principal: Principal) -> None:
        credential = principal.credential
        if credential is None or principal.user_id is None:
            return
        if credential.kind == "session":
            await self.sessions.delete({"_id": credential.id})
        elif credential.kind == "key":
            await self.keys.delete({"hash": credential.id})
        elif credential.kind == "token":
            await self._revoke_token(principal.user_id, credential.id)
        self._credentials.drop(credential.id)
        self._revoked(AuthChange(str(principal.user_id), credential.id))

    async def _revoke_token(self, user_id: ObjectId, jti: str) -> None:
        now = utcnow()
        expires = now + timedelta(seconds=self.tokens.ttl)
        await self.users.update({"_id": user_id}, {"$pull": {"_auth.revoked": {"expiresAt": {"$lt": now}}}})
        await self.users.update({"_id": user_id}, {"$push": {"_auth.revoked": {"jti": jti, "expiresAt": expires}}})
        await self.refresh_tokens.delete({"user": user_id, "jti": jti})
        self._users.drop(str(user_id))

    # --- API keys -------------------------------------------------------------------------

    async def create_key(self, principal: Principal, body: Doc) -> Doc:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise Invalid(fields={"name": "must be a string of 1 to 100 characters"})
        key = "sk_" + self._tag + secrets.token_urlsafe(32)
        doc = {"_id": ObjectId(), "user": principal.user_id, "name": name, "hash": digest(key), "createdAt": utcnow()}
        await self.keys.insert(doc)
        return {"_id": doc["_id"], "name": name, "key": key, "createdAt": doc["createdAt"]}

    async def list_keys(self, principal: Principal) -> list[Doc]:
        return await self.keys.find({"user": principal.user_id}, {"hash": 0, "user": 0}, sort=[("_id", 1)])

    async def delete_key(self, principal: Principal, raw_id: str) -> ObjectId:
        key_id = path_id(raw_id)
        doc = await self.keys.find_one_and_delete({"_id": key_id, "user": principal.user_id}) if key_id else None
        if doc is None:
            raise NotFound("API key not found")
        self._credentials.drop(doc["hash"])
        self._revoked(AuthChange(str(doc["user"]), doc["hash"]))
        deleted: ObjectId = doc["_id"]
        return deleted

    # --- reacting to user changes -----------------------------------------------------------

    async def on_user_write(self, principal: Principal, store: StoreSchema, before: Doc | None,
                            after: Doc | None) -> None:
        """A password change ends the user's other sessions and tokens; any change to a user
        (roles, groups, active, deletion) drops what this process has cached about them."""
        if store.name != "users" or before is None:
            return
        user_id = before["_id"]
        if after is None:
            await self._end_credentials(user_id, keep=None)
            await self.keys.delete({"user": user_id})
        elif after.get("password") != before.get("password"):
            keep = principal.credential if principal.user_id == user_id else None
            await self._end_credentials(user_id, keep=keep)
        self._users.drop(str(user_id))
        self._credentials.drop_where(lambda hit: hit[0] == user_id)
        self._revoked(AuthChange(str(user_id)))

    async def _end_credentials(self, user_id: ObjectId, keep: Credential | None) -> None:
        session_id = keep.id if keep and keep.kind == "session" else None
        jti = keep.id if keep and keep.kind == "token" else None
        await self.sessions.delete({"user": user_id, "_id": {"$ne": session_id}})
        await self.refresh_tokens.delete({"user": user_id, "jti": {"$ne": jti}})
        state = {"_auth.notBefore": epoch_ms(utcnow()) + 1, "_auth.keep": [jti] if jti else []}
        await self.users.update({"_id": user_id}, {"$set": state})

    def forget(self, change: AuthChange) -> None:
        """Drop what this process cached about a change another process made, so the next
        check reads the database. An empty change means anything may have changed."""
        if change.user_id is None and change.credential_id is None:
            self._users.drop_where(lambda _: True)
            self._credentials.drop_where(lambda _: True)
        if change.user_id is not None:
            self._users.drop(change.user_id)
            user_id = path_id(change.user_id)
            self._credentials.drop_where(lambda hit: hit[0] == user_id)
        if change.credential_id is not None:
            self._credentials.drop(change.credential_id)

    async def expires_at(self, *, bearer: str | None = None, api_key: str | None = None,
                         session: str | None = None) -> float | None:
        """When an authenticated credential dies by itself (epoch seconds); None for API keys."""
        if bearer is not None:
            return self.tokens.decode(bearer).expires_ms / 1000
        if session is not None:
            sid_hash = digest(session)
            _, expires = await self._lookup(self.sessions, {"_id": sid_hash}, sid_hash)
            return epoch_ms(expires) / 1000 if expires is not None else None
        return None

    def _revoked(self, change: AuthChange) -> None:
        for listener in self.revocation_listeners:
            listener(change)
