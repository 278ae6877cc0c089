"""Lists answered from the stored JSON text (storage/sqlite/answer.py): byte for byte what
decoding the documents and encoding them for the answer (core/jsonio.py) gives."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from storeengine.core.jsonio import dumps
from storeengine.storage.sqlite import SqliteStorage, answer, codec
from storeengine.storage.sqlite.codec import BOOL, DATE, ESC, OID

TAGS = [ESC, OID, BOOL, DATE]
# Strings that start with, end with or hold the codec's tag code points, and look like tagged text.
tricky = st.sampled_from(TAGS).flatmap(lambda tag: st.sampled_from([
    tag, tag + "1", tag + "0", tag + "0123456789abcdef01234567", tag + "2026-01-02T03:04:05.678",
    "a" + tag + "0123456789abcdef01234567", 'x"' + tag + "1", "\\" + tag + "0"]))
# Below the tags' UTF-8 lead bytes; no lone surrogates (the codec refuses them: 400).
plain_text = st.text(st.characters(max_codepoint=0x10FFBF, blacklist_categories=("Cs",)), max_size=8)


def documents(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
        text, st.binary(min_size=12, max_size=12).map(ObjectId),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)))
    keys = text.filter(lambda k: k != "" and not k.startswith("$") and "." not in k)
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
    return st.dictionaries(keys, values, max_size=6).map(lambda d: {"_id": ObjectId(), **d})


def _rows(docs: list[dict[str, Any]]) -> list[bytes]:
    return [codec.encode(doc).encode() for doc in docs]


@settings(max_examples=150, deadline=None)
@given(st.lists(documents(plain_text), max_size=4))
def test_the_rewritten_text_is_the_encoded_answer(docs: list[dict[str, Any]]) -> None:
    rows = _rows(docs)
    assert answer.array(rows) == dumps([codec.decode(row) for row in rows])


@settings(max_examples=150, deadline=None)
@given(st.lists(documents(st.one_of(plain_text, tricky)), max_size=4))
def test_strings_holding_tags_are_never_rewritten_wrong(docs: list[dict[str, Any]]) -> None:
    rows = _rows(docs)
    rewritten = answer.array(rows)
    assert rewritten is None or rewritten == dumps([codec.decode(row) for row in rows])


def _sqlite_member(rows: list[bytes], name: str) -> list[bytes | None]:
    """What SQLite reads for `answer.top_level` (the column it replaced, pages._extracted)."""
    conn = sqlite3.connect(":memory:")
    path = '$."' + name.replace('"', '""') + '"'
    return [conn.execute("SELECT CAST(? -> ? AS BLOB)", (row.decode(), path)).fetchone()[0] for row in rows]


names = st.sampled_from(["ref", "parent", "a"])
references = st.one_of(st.none(), st.binary(min_size=12, max_size=12).map(ObjectId),
                       st.lists(st.binary(min_size=12, max_size=12).map(ObjectId), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(documents(st.one_of(plain_text, tricky, names)), names, references, st.booleans()),
                min_size=1, max_size=4))
def test_a_top_level_member_read_from_the_bytes_is_what_sqlite_reads(
        cases: list[tuple[dict[str, Any], str, Any, bool]]) -> None:
    """Each document with or without the member, anywhere among others (nested objects holding
    a member of the same name, strings holding its key's text): the value SQLite's own JSON
    parser reads, byte for byte, whichever way `top_level` took."""
    for doc, name, value, present in cases:
        if present:
            doc[name] = value
        else:
            doc.pop(name, None)
        rows = _rows([doc])
        assert answer.top_level(rows, name) == _sqlite_member(rows, name)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(min_size=12, max_size=12).map(ObjectId)), min_size=1, max_size=6),
       st.lists(documents(st.one_of(plain_text, tricky, names)), min_size=6, max_size=6))
def test_a_page_whose_rows_all_refer_to_ids_reads_what_sqlite_reads(refs: list[ObjectId | None],
                                                                    others: list[dict[str, Any]]) -> None:
    """A page read as a whole (its rows all holding an id at top level: the C loops; any row
    that does not, a nested member of that name before it, a null: the row by row reading)."""
    docs = [{**other, "ref": ref} for ref, other in zip(refs, others, strict=False)]
    rows = _rows(docs)
    assert answer.top_level(rows, "ref") == _sqlite_member(rows, "ref")
    plain = _rows([{"_id": i, "n": i, "ref": ref} for i, ref in enumerate(refs)])
    assert answer.top_level(plain, "ref") == _sqlite_member(plain, "ref")


def test_a_top_level_member_is_read_under_nested_ones_of_the_same_name() -> None:
    ref, other = ObjectId(), ObjectId()
    rows = _rows([{"_id": 1, "m": {"x": 1, "ref": other}, "ref": ref}, {"_id": 2, "m": {"ref": other}},
                  {"_id": 3, "s": ',"ref":', "ref": None}, {"_id": 4, "tags": ["a"], "ref": ref}])
    assert answer.top_level(rows, "ref") == _sqlite_member(rows, "ref")
    assert [codec.decode_value(v) if v else v for v in answer.top_level(rows, "ref")] == [ref, None, None, ref]


def test_tagged_values_are_rewritten_in_place() -> None:
    oid, at = ObjectId(), datetime(2026, 1, 2, 3, 4, 5, 678000)
    rows = [codec.encode({"_id": oid, "on": True, "off": False, "at": at, "list": [oid, at, True]}).encode()]
    assert answer.array(rows) == (f'[{{"_id":"{oid}","on":true,"off":false,"at":"2026-01-02T03:04:05.678Z",'
                                  f'"list":["{oid}","2026-01-02T03:04:05.678Z",true]}}]').encode()


@pytest.mark.parametrize("doc", [
    {"s": ESC + "escaped"},  # stored with one more ESC in front
    {OID + "0123456789abcdef01234567": 1},  # a key that looks like an ObjectId
    {"s": 'q"' + BOOL + "1"},  # after an escaped quote, inside a string
])
def test_what_cannot_be_rewritten_is_left_to_the_decoder(doc: dict[str, Any]) -> None:
    rows = [codec.encode({"_id": 1, **doc}).encode()]
    assert answer.array(rows) is None


def test_each_rewrites_every_row_as_array_does() -> None:
    rows = _rows([{"_id": ObjectId(), "at": datetime(2026, 1, 1), "ok": True, "s": "a\nb"} for _ in range(3)])
    each = answer.each(rows)
    assert each is not None and b"[" + b",".join(each) + b"]" == answer.array(rows)
    assert answer.each([]) == []


def test_find_answer_is_find_encoded(tmp_path: Any) -> None:
    async def run() -> None:
        storage = SqliteStorage(str(tmp_path / "answer.db"), name="answer")
        try:
            coll = storage.collection("items")
            ref = ObjectId()
            docs = [{"_id": ObjectId(), "n": i, "at": datetime(2026, 1, 1, 0, 0, i), "ok": i % 2 == 0,
                     "s": ESC + "odd" if i == 3 else f"s{i}", "ref": [ref, ref] if i == 2 else ref if i else None}
                    for i in range(6)]
            await coll.insert_many(docs)
            for query, limit in (({}, 0), ({"n": {"$gte": 2}}, 3), ({"n": 99}, 0)):
                rows, columns, last = await coll.find_answer(query, [("n", -1)], 0, limit, ["ref", "none", "_id"])
                found = await coll.find(query, None, [("n", -1)], 0, limit)
                assert rows == [dumps(doc) for doc in found]  # the ESC string takes the decoder's way, and is right
                # Each row's code, and each code's value.
                assert [[values[code] for code in codes] for codes, values in columns] == \
                    [[doc["ref"] for doc in found], [None] * len(found), [doc["_id"] for doc in found]]
                assert last == (found[-1] if found else None)
            rows, columns, _ = await coll.find_answer({}, [("n", 1)])
            assert columns == [] and rows == [dumps(doc) for doc in docs]
            # Opened (for members to be added): each without its closing brace, the ESC row included.
            opened, _, _ = await coll.find_answer({}, [("n", 1)], opened=True)
            assert opened == [row[:-1] for row in rows]
            assert await storage.collection("none").find_answer({}) == ([], [], None)
            # Top-level fields left out in SQL, as find's exclusion projection leaves them out.
            rows, _, _ = await coll.find_answer({}, [("n", 1)], drop=("at", "s", "absent"))
            projected = await coll.find({}, {"at": 0, "s": 0, "absent": 0}, [("n", 1)])
            assert rows == [dumps(doc) for doc in projected] and b'"at"' not in b"".join(rows)
            with pytest.raises(ValueError):
                await coll.find_answer({}, drop=("a.b",))
        finally:
            storage.shut()

    asyncio.run(run())


@pytest.mark.parametrize("names", [["a\n"], ["_change", "a b"], ["a.b"], ['a"']])
def test_a_page_leaves_out_plain_top_level_names_only(names: list[str]) -> None:
    """`drop` is spliced into SQL's JSON paths: a name with anything but letters, digits and `_`
    (a trailing newline included) is refused, and the service then decodes instead."""
    from storeengine.storage.sqlite.pages import PageSql, droppable

    assert not droppable(names)
    with pytest.raises(ValueError):
        PageSql([], names)
    assert droppable(["_change", "_expand", "A9"])
