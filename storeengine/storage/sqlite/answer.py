"""Stored JSON text -> the answer's JSON bytes, without decoding the documents.

A list answer used to go JSON text -> dict (orjson, then a walk in Python untagging every
ObjectId and date into objects) -> JSON bytes again (orjson, calling back into Python for every
ObjectId and date): about half the server's CPU of a list of 1,000 on the embedded database
(bench/vs_pocketbase.py, main's server beside in one run: 17.97 -> 9.38 ms CPU per page for one
client, 17.13 -> 7.45 ms at 32 connections, with this). The stored text is orjson's own
output, and the answer (core/jsonio.py `dumps`) differs from it only in the codec's tagged
strings (codec.py):

    "<OID>0123...ef"              -> "0123...ef"                  (the ObjectId's hex)
    "<DATE>2026-01-02T03:04:05.678" -> "2026-01-02T03:04:05.678Z"   (the contract's date)
    "<BOOL>1" / "<BOOL>0"         -> true / false

So the rows are joined as they are and only those strings are rewritten, with byte searches
(C, no call into Python per value). A tag is rewritten only where it opens a *value*: its `"` is
a string's opening quote (preceded by `:`, `,` or `[`; a quote inside a string is escaped, `\\"`),
the string is exactly the tag and its fixed-width text, and its closing quote is followed by
`,`, `}` or `]` (a key's is followed by `:`). Every occurrence of a tag is checked that way
before any is rewritten; anything else (an escaped plain string, a key or a string holding a tag
code point, vanishingly rare) returns None and the caller decodes and encodes as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from storeengine.storage.sqlite.codec import BOOL, DATE, OID

_OPEN = b'"'
_OID, _DATE, _BOOL = (_OPEN + tag.encode() for tag in (OID, DATE, BOOL))
_TAGS = OID.encode()[:3]  # the UTF-8 bytes every tag (and ESC) starts with: F4 8F BF
_DATE_WIDTH = 23  # YYYY-MM-DDThh:mm:ss.mmm


def _value(tag: bytes, body: bytes) -> re.Pattern[bytes]:
    """A tagged string in value position. The pattern starts with the tag's literal bytes, so
    `re` finds candidates with a fast search; the look-behind then checks the quote opens a value."""
    literal = re.escape(tag)
    return re.compile(literal + rb"(?<=[:,\[]" + literal + rb")" + body + rb'"(?=[,}\]])')


_OID_VALUE = _value(_OID, rb"[0-9a-f]{24}")
_DATE_VALUE = _value(_DATE, rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")
_TRUE_VALUE, _FALSE_VALUE = _value(_BOOL, b"1"), _value(_BOOL, b"0")


def array(rows: Sequence[bytes]) -> bytes | None:
    """The stored documents as one JSON array, in the answer's form; None if a row holds a tag
    this cannot rewrite in place."""
    text = _rewrite(b",".join(rows))
    return None if text is None else b"[" + text + b"]"


def each(rows: Sequence[bytes], opened: bool = False) -> list[bytes] | None:
    """Each stored document in the answer's form (rewritten in one pass: the rows joined by a
    newline, which orjson's compact output never holds, and split again); None as for `array`.
    `opened`: each without its closing brace, for a caller that adds members to each
    (store/expanded.py; slicing each costs less than splitting at `}\\n`, which memchr cannot find)."""
    text = _rewrite(b"\n".join(rows))
    if text is None:
        return None
    split = text.split(b"\n") if rows else []
    return [row[:-1] for row in split] if opened else split


def _rewrite(text: bytes) -> bytes | None:
    if _TAGS not in text:
        return text
    if _OID in text:
        if len(_OID_VALUE.findall(text)) != text.count(_OID):
            return None
        text = text.replace(_OID, _OPEN)
    if _DATE in text:
        if len(_DATE_VALUE.findall(text)) != text.count(_DATE):
            return None
        parts = text.split(_DATE)
        text = _OPEN.join([parts[0], *[p[:_DATE_WIDTH] + b"Z" + p[_DATE_WIDTH:] for p in parts[1:]]])
    if _BOOL in text:
        expected = text.count(_BOOL)
        text, trues = _TRUE_VALUE.subn(b"true", text)
        text, falses = _FALSE_VALUE.subn(b"false", text)
        if trues + falses != expected:
            return None
    if _TAGS in text:  # an escaped string (ESC), or a tag code point inside a string or a key
        return None
    return text
