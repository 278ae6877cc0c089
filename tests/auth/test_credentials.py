"""Unit tests of storeengine/auth/credentials.py: one reader for HTTP headers and Socket.IO connects."""

from __future__ import annotations

import pytest

from storeengine.auth.credentials import Credentials, environ_origin_allowed, from_connect, origin_allowed, read
from storeengine.core.errors import Unauthorized


def test_http_order_is_authorization_then_key_then_cookie():
    assert read("Bearer abc ", "k", "s") == Credentials(bearer="abc")
    assert read("bearer abc", None, None) == Credentials(bearer="abc")
    assert read(None, "k", "s") == Credentials(api_key="k")
    assert read(None, None, "s") == Credentials(session="s")
    assert read(None, None, "s").as_kwargs() == {"session": "s"}


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "", "token"])
def test_a_malformed_authorization_header_is_401_even_with_other_credentials(header):
    with pytest.raises(Unauthorized, match="Bearer <token>"):
        read(header, "k", "s")


def test_nothing_is_401():
    with pytest.raises(Unauthorized, match="Authentication required"):
        read(None, "", "")


def test_connect_payload_comes_first_then_the_handshake_like_http():
    environ = {"HTTP_AUTHORIZATION": "Bearer h", "HTTP_COOKIE": "a=1; sid=cookie"}
    assert from_connect(environ, {"token": "t", "apiKey": "k"}) == Credentials(bearer="t")
    assert from_connect(environ, {"apiKey": "k"}) == Credentials(api_key="k")
    assert from_connect(environ, {"token": 5}) == Credentials(bearer="h")
    assert from_connect({"HTTP_COOKIE": "a=1; sid=cookie"}, None) == Credentials(session="cookie")
    assert from_connect({"HTTP_X_API_KEY": "k", "HTTP_COOKIE": "sid=c"}, "x") == Credentials(api_key="k")
    with pytest.raises(Unauthorized):
        from_connect({"HTTP_AUTHORIZATION": "Basic x", "HTTP_COOKIE": "sid=c"}, None)
    with pytest.raises(Unauthorized):
        from_connect({}, {})


def test_one_origin_rule():
    allowed = ("https://app.example",)
    assert origin_allowed(None, "http", "h:1", allowed)
    assert origin_allowed("http://h:1", "http", "h:1", allowed)
    assert origin_allowed("https://app.example/", "http", "h:1", allowed)
    assert not origin_allowed("https://h:1", "http", "h:1", allowed)
    assert not origin_allowed("http://evil.example", "http", "h:1", allowed)
    environ = {"wsgi.url_scheme": "https", "HTTP_HOST": "h"}
    assert environ_origin_allowed("https://h", environ, ())
    assert not environ_origin_allowed("http://h", environ, ())
    assert environ_origin_allowed("http://localhost", {"HTTP_HOST": "localhost"}, ())
