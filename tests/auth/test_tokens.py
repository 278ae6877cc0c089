"""Unit tests of storeengine/auth/tokens.py: HS256 JWTs with the issue time in the jti."""

from __future__ import annotations

import time

import jwt
import pytest

from storeengine.auth.tokens import TokenIssuer
from storeengine.core.errors import Unauthorized

SECRET = "unit-test-secret-of-at-least-32-bytes"


def test_issue_and_decode_round_trip():
    issuer = TokenIssuer(SECRET, "storeengine", 60)
    before = int(time.time() * 1000)
    token, claims = issuer.issue("u1")
    assert before <= claims.issued_ms <= int(time.time() * 1000)
    assert claims.expires_ms - claims.issued_ms <= 60_000 < claims.expires_ms - claims.issued_ms + 1000
    assert int(claims.jti.split(".")[0], 16) == claims.issued_ms
    assert issuer.decode(token) == claims
    assert issuer.decode(token) == claims  # the second time from the verified cache
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="storeengine")
    assert payload["sub"] == "u1" and payload["jti"] == claims.jti


def forge(payload: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    now = int(time.time())
    return jwt.encode({"sub": "u1", "iat": now, "nbf": now, "exp": now + 60, "jti": f"{now * 1000:x}.x",
                       "iss": "storeengine", **payload}, key, algorithm=algorithm)


@pytest.mark.parametrize("token", [
    "", "not-a-jwt", forge({}, key="another-secret-of-at-least-32-bytes!"), forge({}, key="", algorithm="none"),
    forge({"exp": int(time.time()) - 5}), forge({"iss": "someone-else"}), forge({"jti": "nothex.x"}),
    forge({"nbf": int(time.time()) + 3600}),
])
def test_bad_tokens_are_401(token):
    with pytest.raises(Unauthorized):
        TokenIssuer(SECRET, "storeengine", 60).decode(token)


@pytest.mark.parametrize("claim", ["sub", "iat", "nbf", "exp", "jti", "iss"])
def test_every_claim_is_required(claim):
    now = int(time.time())
    payload = {"sub": "u1", "iat": now, "nbf": now, "exp": now + 60, "jti": f"{now * 1000:x}.x", "iss": "storeengine"}
    del payload[claim]
    with pytest.raises(Unauthorized):
        TokenIssuer(SECRET, "storeengine", 60).decode(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_a_remembered_token_still_expires():
    issuer = TokenIssuer(SECRET, "storeengine", 1)
    token, claims = issuer.issue("u1")
    assert issuer.decode(token) == claims
    time.sleep(max(0.0, (claims.expires_ms - time.time() * 1000) / 1000) + 0.05)
    with pytest.raises(Unauthorized):
        issuer.decode(token)
    with pytest.raises(Unauthorized):
        issuer.decode(token)  # and it is forgotten, not remembered as expired


def test_the_verified_cache_is_bounded():
    issuer = TokenIssuer(SECRET, "storeengine", 60)
    issuer.MAX_VERIFIED = 3
    tokens = [issuer.issue(f"u{i}")[0] for i in range(5)]
    for token in tokens:
        issuer.decode(token)
        assert len(issuer._verified) <= 3
