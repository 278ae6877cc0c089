"""Access tokens: JWT, HS256 only, signed with the server secret."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from storeengine.core.errors import Unauthorized

_REQUIRED = ["sub", "iat", "nbf", "exp", "jti", "iss"]


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    jti: str
    issued_ms: int
    expires_ms: int
    tenant: str | None = None  # the `tid` claim: the tenant that issued it (API.md 12); None: public


class TokenIssuer:
    # Verified tokens are remembered (bounded), so a client reusing its token pays the HMAC
    # and JSON work once; expiry is still checked on every use, revocation lives elsewhere.
    MAX_VERIFIED = 10000

    def __init__(self, secret: str, issuer: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self.ttl = ttl_seconds
        self._verified: dict[str, TokenClaims] = {}

    def issue(self, user_id: str, tenant: str | None = None) -> tuple[str, TokenClaims]:
        now_ms = int(time.time() * 1000)
        now = now_ms // 1000
        # The jti carries the issue time in ms: a password change ends tokens issued before it
        # to the millisecond, which `iat` (whole seconds) cannot tell.
        jti = f"{now_ms:x}.{secrets.token_urlsafe(12)}"
        payload = {"sub": user_id, "iat": now, "nbf": now, "exp": now + self.ttl, "jti": jti, "iss": self._issuer}
        if tenant is not None:
            payload["tid"] = tenant
        token = jwt.encode(payload, self._secret, algorithm="HS256")
        return token, TokenClaims(user_id, jti, now_ms, (now + self.ttl) * 1000, tenant)

    def decode(self, token: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is not None:
            if claims.expires_ms > time.time() * 1000:
                return claims
            del self._verified[token]
            raise Unauthorized("Invalid or expired token")
        claims = self._decode(token)
        if len(self._verified) >= self.MAX_VERIFIED:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            payload: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=["HS256"], issuer=self._issuer,
                options={"require": _REQUIRED},
            )
            issued_ms = int(str(payload["jti"]).split(".", 1)[0], 16)
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthorized("Invalid or expired token") from None
        tenant = payload.get("tid")
        return TokenClaims(str(payload["sub"]), str(payload["jti"]), issued_ms, int(payload["exp"]) * 1000,
                           tenant if isinstance(tenant, str) else None)
