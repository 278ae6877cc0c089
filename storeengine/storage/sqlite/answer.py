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
from itertools import repeat
from operator import add, getitem
from typing import cast

import orjson

from storeengine.storage.sqlite.codec import BOOL, DATE, OID

_OPEN = b'"'
_OID, _DATE, _BOOL = (_OPEN + tag.encode() for tag in (OID, DATE, BOOL))
_TAGS = OID.encode()[:3]  # the UTF-8 bytes every tag (and ESC) starts with: F4 8F BF
_DATE_WIDTH = 23  # YYYY-MM-DDThh:mm:ss.mmm


# Every tagged string in value position, whatever its tag: one search for all three (their UTF-8
# bytes differ only in the fourth, the one group: one byte, which Python does not allocate),
# starting with the tags' common bytes so that `re` finds candidates with a fast search; the
# look-behind then checks the quote opens a value.
_KIND_OID, _KIND_DATE, _KIND_BOOL = _OID[4:], _DATE[4:], _BOOL[4:]
_VALUE = re.compile(re.escape(_TAGS) + rb"(?<=[:,\[]" + re.escape(_OPEN + _TAGS) + rb")([" + _KIND_OID + _KIND_DATE
                    + _KIND_BOOL + rb"])(?:(?<=" + _KIND_OID + rb")[0-9a-f]{24}|(?<=" + _KIND_DATE
                    + rb")\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}|(?<=" + _KIND_BOOL + rb')[01])"(?=[,}\]])')
_TRUE, _FALSE = _BOOL + b'1"', _BOOL + b'0"'
_DATES = re.compile(re.escape(_DATE) + rb"(.{%d})" % _DATE_WIDTH, re.DOTALL)  # each checked by _VALUE first


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
    """Checked once for every tag: each occurrence of the tags' common bytes (ESC's too, and a
    tag code point anywhere) must open a well-formed tagged value; then plain replacements.
    (A search per tag, each checked apart, and a search for each tag's presence: 2.8 ms a page of
    1,000 of bench/vs_pocketbase.py's entities; this: 2.2 ms.)"""
    found = text.count(_TAGS)
    if not found:
        return text
    kinds = _VALUE.findall(text)
    if len(kinds) != found:
        return None
    if _KIND_OID in kinds:
        text = text.replace(_OID, _OPEN)
    if _KIND_DATE in kinds:
        # [text, date, text, date, ..., text] -> text " date Z text " date Z ... text, by slices
        # of lists (C loops; a slice and two copies per date in Python: a quarter of a page's time).
        parts = _DATES.split(text)
        dates = len(parts) // 2
        pieces: list[bytes] = [_OPEN] * (4 * dates + 1)
        pieces[0::4], pieces[2::4], pieces[3::4] = parts[0::2], parts[1::2], [b"Z"] * dates
        text = b"".join(pieces)
    if _KIND_BOOL in kinds:
        text = text.replace(_TRUE, b"true").replace(_FALSE, b"false")
    return text


def top_level(rows: Sequence[bytes], name: str) -> list[bytes | None]:
    """Each stored document's value of its top-level member `name` as JSON text, as SQLite's
    `CAST(doc -> '$.name' AS BLOB)` gives it (None where it is missing), read from the bytes
    SQLite already handed over: parsing each document again for it cost SQLite ~1.7 us a row
    (3.40's JSON parser), a third of a page of 1,000's time (bench/references.py, `expand`).

    A member `,"name":` with no `{` before it but the document's own is the top-level one: only
    a key can open with `,"` (inside a string a quote is escaped, `\\"`), and a key of a nested
    object needs that object's `{` before it (in an array too: `[{...`). Read so when its value is
    an ObjectId or null (a reference, what `expand` follows); any other row (a list of ids, a `{`
    before the member, if only in a string) is decoded. A page whose every row refers to an
    ObjectId so (the common case) is read in a few C loops instead (`_references`)."""
    key = b',"' + name.encode() + b'":'
    every = _references(rows, key)
    if every is not None:
        return every
    first = b'{' + key[1:]  # a document whose first member it is (not ours: `_id` comes first)
    out: list[bytes | None] = []
    for row in rows:
        at = row.find(key)
        if at < 0 and not row.startswith(first):
            out.append(None)
            continue
        found = None if at < 0 or row.find(b"{", 1, at) >= 0 else _REFERENCE.match(row, at + len(key))
        if found is not None:
            out.append(found[0])
        else:
            value = orjson.loads(row).get(name, _MISSING)
            out.append(None if value is _MISSING else orjson.dumps(value))
    return out


_MISSING = object()


def _references(rows: Sequence[bytes], key: bytes) -> list[bytes | None] | None:
    """`top_level` of a page whose every row holds the member `key` at top level (no `{` before
    it but the document's own) with an ObjectId as its value, else None: each step one C loop
    over the page (map), where a Python step per row cost 0.57 ms a page of 1,000 (this: 0.35).
    The value is the 30 bytes after the key: `"`, the tag, 24 hex digits and `"` close a string
    that holds nothing else; checked once per distinct value (a page refers to few)."""
    ats = list(map(bytes.find, rows, repeat(key)))
    if not rows or min(ats) < 0 or max(map(bytes.find, rows, repeat(b"{"), repeat(1), ats)) >= 0:
        return None
    starts = list(map(add, ats, repeat(len(key))))
    ends = map(add, starts, repeat(_OID_WIDTH))
    values: list[bytes] = list(map(getitem, rows, map(slice, starts, ends)))  # type: ignore[arg-type]  # overloaded
    return cast(list[bytes | None], values) if all(map(_OID_VALUE.fullmatch, set(values))) else None


_REFERENCE = re.compile(rb"null(?=[,}])|" + re.escape(_OID) + rb'[0-9a-f]{24}"(?=[,}])')
_OID_VALUE = re.compile(re.escape(_OID) + rb'[0-9a-f]{24}"')
_OID_WIDTH = len(_OID) + 24 + 1
