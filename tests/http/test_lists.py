"""Lists: GET /api/v1/:store and every parameter of API.md section 7, over the `things` store.

Each app start costs a few tens of milliseconds, so cases of one shape are grouped: a test
runs a table of cases against one set of entities and reports every failing case at once.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

# Each test runs on the embedded database and over the MongoDB wire (tests/lanes.py).
LANES = ("embedded", "wire")

URL = "/api/v1/things"
REF_A, REF_B, OTHER_ID = "0123456789abcdef01234567", "76543210fedcba9876543210", "aaaaaaaaaaaaaaaaaaaaaaaa"
ROWS: list[dict[str, Any]] = [
    {"name": "alpha", "count": 1, "score": 1.5, "flag": True, "ref": REF_A, "when": "2026-01-01T00:00:00.000Z",
     "tags": ["x", "y"], "nested": {"a": 1, "b": "p"}, "pin": "alpha-pin"},
    {"name": "beta", "count": 2, "score": 2, "flag": False, "ref": REF_B, "when": "2026-02-01T12:30:00.250Z",
     "tags": ["y"], "nested": {"a": 2, "b": "q"}},
    {"name": "gamma", "count": 3, "score": 3.5, "flag": True, "ref": REF_A, "when": "2026-03-01T00:00:00Z",
     "tags": [], "nested": {"a": 3}},
    {"name": "Delta", "count": 3, "flag": False},
    {"name": "3", "count": -4, "score": -0.5, "tags": ["z", "x", "w"]},
]
NAMES = [row["name"] for row in ROWS]
ALPHA, BETA, GAMMA, DELTA, THREE = NAMES
Params = dict[str, str] | list[tuple[str, str]]


def instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


@pytest.fixture
async def rows(client, admin) -> list[dict[str, Any]]:
    """ROWS created in order by the admin, each with its own createdAt millisecond."""
    created: list[dict[str, Any]] = []
    for row in ROWS:
        # Waits for the clock to move on, not for an event.
        while created and instant(created[-1]["createdAt"]) >= datetime.now(UTC) - timedelta(milliseconds=1):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        r = await client.post(URL, json=row, headers=admin)
        assert r.status_code == 201, r.text
        created.append(r.json())
    stamps = [instant(doc["createdAt"]) for doc in created]
    assert stamps == sorted(set(stamps)), "the fixture needs distinct createdAt values"
    return created


async def listing(client, headers, params: Params | None = None) -> Any:
    r = await client.get(URL, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def names(client, headers, params: Params | None = None) -> list[str | None]:
    return [doc.get("name") for doc in await listing(client, headers, params)]


async def expect_names(client, headers, cases: Sequence[tuple[Params, list[str]]]) -> None:
    """Each case lists exactly the expected names, in order; every mismatch is reported."""
    problems = []
    for params, expected in cases:
        r = await client.get(URL, params=params, headers=headers)
        got = [d.get("name") for d in r.json()] if r.status_code == 200 else f"{r.status_code} {r.text}"
        if got != expected:
            problems.append(f"{params}: got {got}, expected {expected}")
    assert not problems, "\n".join(problems)


async def expect_refused(client, headers, cases: Sequence[tuple[Params, str]], url: str = URL) -> None:
    """Each case is a 400 with the plain error envelope and a message matching its pattern
    (the message says what is wrong); every deviation is reported."""
    problems = []
    for params, pattern in cases:
        r = await client.get(url, params=params, headers=headers)
        body = r.json()
        message = body.get("message") if isinstance(body, dict) else None
        envelope = {"success": False, "code": "400", "message": message, "tags": ["error_bad_request"]}
        if r.status_code != 400 or body != envelope or not isinstance(message, str):
            problems.append(f"{params}: {r.status_code} {r.text[:200]}")
        elif not re.search(pattern, body["message"], re.IGNORECASE):
            problems.append(f"{params}: message {body['message']!r} does not match {pattern!r}")
    assert not problems, "\n".join(problems)


# --- order, offset, limit ------------------------------------------------------------------

async def test_default_order_is_oldest_first_by_id(client, admin, rows):
    # Updating the oldest entity does not move it: the order is by _id, not updatedAt.
    r = await client.patch(f"{URL}/{rows[0]['_id']}", json={"count": 100}, headers=admin)
    assert r.status_code == 200, r.text
    docs = await listing(client, admin)
    assert [d["name"] for d in docs] == NAMES
    assert [d["_id"] for d in docs] == sorted(d["_id"] for d in docs)


async def test_offset_and_limit(client, admin, rows):
    await expect_names(client, admin, [
        ({"offset": "0"}, NAMES),
        ({"offset": "2"}, NAMES[2:]),
        ({"limit": "1"}, NAMES[:1]),
        ({"offset": "1", "limit": "2"}, NAMES[1:3]),
        ({"offset": "4", "limit": "10"}, NAMES[4:]),
        ({"offset": "5"}, []),
        ({"offset": "1000", "limit": "1"}, []),
        ({"limit": "10000"}, NAMES),
        ({"offset": "1", "limit": "2", "sort": "-count"}, [DELTA, BETA]),
    ])


async def test_an_offset_may_be_any_64_bit_integer(client, admin, rows):
    await expect_names(client, admin, [({"offset": "2147483648"}, []), ({"offset": str(2**63 - 1)}, [])])
    await expect_refused(client, admin, [({"offset": str(2**63)}, "offset"), ({"offset": "1" + "0" * 19}, "offset")])


async def test_default_limit_returns_more_than_a_small_page(client, admin):
    for i in range(120):
        assert (await client.post(URL, json={"count": i}, headers=admin)).status_code == 201
    assert [d["count"] for d in await listing(client, admin)] == list(range(120))


# --- only ----------------------------------------------------------------------------------

def project(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """What `only=fields` leaves of a full entity (MongoDB projection semantics)."""
    out: dict[str, Any] = {"_id": doc["_id"]}
    for path in fields:
        head, _, rest = path.partition(".")
        if head not in doc:
            continue
        if not rest:
            out[head] = doc[head]
        elif isinstance(doc[head], dict):
            sub = out.setdefault(head, {})
            if rest in doc[head]:
                sub[rest] = doc[head][rest]
    return out


async def test_only_keeps_id_and_the_named_fields(client, admin, rows):
    full = await listing(client, admin)
    problems = []
    for only in ["name", "name,nested.a", "count,tags,ref,when", "_id", "createdAt,owner", "nested.b"]:
        got = await listing(client, admin, {"only": only})
        if got != [project(doc, only.split(",")) for doc in full]:
            problems.append(f"only={only}: {got}")
    assert not problems, "\n".join(problems)


async def test_write_only_values_never_appear_in_lists(client, admin, rows):
    docs = await listing(client, admin)
    meta = await listing(client, admin, {"meta": "true"})
    assert all("pin" not in doc for doc in [*docs, meta["first"], meta["last"]])
    assert "alpha-pin" not in json.dumps([docs, meta])


# --- meta ----------------------------------------------------------------------------------

async def test_meta_counts_and_bounds_the_whole_result(client, admin, rows):
    full = await listing(client, admin)
    assert await listing(client, admin, {"meta": "true"}) == {"total": 5, "first": full[0], "last": full[-1]}


async def test_meta_uses_the_same_filter_and_sort(client, admin, rows):
    problems = []
    for params, expected in [
        ({"flag": "true"}, (2, ALPHA, GAMMA)),
        ({"filter": json.dumps({"count": {"$gte": 2}})}, (3, BETA, DELTA)),
        ({"sort": "-score"}, (5, GAMMA, DELTA)),
        ({"sort": "name"}, (5, THREE, GAMMA)),
        ({"tags": "x", "sort": "-_id"}, (2, THREE, ALPHA)),
    ]:
        meta = await listing(client, admin, {"meta": "true", **params})
        got = (meta["total"], meta["first"]["name"], meta["last"]["name"]) if meta.keys() == {
            "total", "first", "last"} else meta
        if got != expected:
            problems.append(f"{params}: got {got}, expected {expected}")
    assert not problems, "\n".join(problems)


async def test_meta_uses_the_same_time_range_and_projection(client, admin, rows):
    params = {"meta": "true", "from": rows[1]["createdAt"], "to": rows[4]["createdAt"], "only": "name"}
    assert await listing(client, admin, params) == {
        "total": 3, "first": {"_id": rows[1]["_id"], "name": BETA}, "last": {"_id": rows[3]["_id"], "name": DELTA}}


async def test_meta_of_nothing(client, admin, rows):
    nothing = {"total": 0, "first": None, "last": None}
    for params in [{"name": "nobody"}, {"from": "2999-01-01T00:00Z"}, {"filter": '{"count": 99}'}]:
        assert await listing(client, admin, {"meta": "true", **params}) == nothing, params


async def test_meta_of_an_empty_store(client, admin):
    assert await listing(client, admin, {"meta": "true"}) == {"total": 0, "first": None, "last": None}
    assert await listing(client, admin) == []


async def test_meta_false_is_a_plain_list(client, admin, rows):
    assert await names(client, admin, {"meta": "false", "limit": "2"}) == NAMES[:2]


# --- from / to ---------------------------------------------------------------------------------

def form(precision: str, zone: str | None) -> Callable[[datetime], tuple[str, datetime]]:
    """A writer of one ISO 8601 form: returns the text and the instant it names."""
    def write(moment: datetime) -> tuple[str, datetime]:
        offset = timedelta(0)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        local = moment.astimezone(timezone(offset))
        if precision == "min":
            local, text = local.replace(second=0, microsecond=0), local.strftime("%Y-%m-%dT%H:%M")
        elif precision == "s":
            local, text = local.replace(microsecond=0), local.strftime("%Y-%m-%dT%H:%M:%S")
        else:
            text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        return text + (zone or ""), local
    return write


def unix_ms(moment: datetime) -> tuple[str, datetime]:
    return str(round(moment.timestamp() * 1000)), moment


TIME_FORMS = {
    "unix-ms": unix_ms,
    "ms": form("ms", None), "ms-Z": form("ms", "Z"), "ms+02:00": form("ms", "+02:00"),
    "ms-05:30": form("ms", "-05:30"), "ms+00:00": form("ms", "+00:00"),
    "s": form("s", None), "s-Z": form("s", "Z"), "s+01:00": form("s", "+01:00"),
    "min": form("min", None), "min-Z": form("min", "Z"), "min-03:00": form("min", "-03:00"),
}


async def test_from_and_to_in_every_time_form(client, admin, rows):
    created = [(doc["name"], instant(doc["createdAt"])) for doc in rows]
    cases: list[tuple[Params, list[str]]] = []
    for write in TIME_FORMS.values():
        text, moment = write(instant(rows[2]["createdAt"]))
        cases += [({key: text}, [n for n, t in created if t >= moment]) for key in ("from", "begin")]
        cases += [({key: text}, [n for n, t in created if t < moment]) for key in ("to", "end")]
    await expect_names(client, admin, cases)


async def test_time_bounds_are_exact_to_the_millisecond(client, admin, rows):
    at = rows[2]["createdAt"]  # from <= createdAt < to
    next_ms = (instant(at) + timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    await expect_names(client, admin, [
        ({"from": at}, [GAMMA, DELTA, THREE]),
        ({"to": at}, [ALPHA, BETA]),
        ({"from": at, "to": next_ms}, [GAMMA]),
    ])


async def test_from_and_to_together(client, admin, rows):
    low, high = rows[1]["createdAt"], unix_ms(instant(rows[3]["createdAt"]))[0]
    pairs = [("from", "to"), ("begin", "end"), ("from", "end"), ("begin", "to")]
    await expect_names(client, admin, [({a: low, b: high}, [BETA, GAMMA]) for a, b in pairs])


async def test_time_range_combines_with_filters(client, admin, rows):
    params = {"from": rows[1]["createdAt"], "flag": "false", "filter": json.dumps({"count": {"$lt": 3}})}
    assert await names(client, admin, params) == [BETA]


async def test_time_zones_order_a_range(client, admin):
    # 23:30Z the day before is earlier than 01:00+01:00 (= 00:00Z): a valid, empty range.
    assert await listing(client, admin, {"from": "2025-12-31T23:30Z", "to": "2026-01-01T01:00+01:00"}) == []


# --- property equality -----------------------------------------------------------------------

async def test_property_equality_is_typed(client, admin, rows):
    await expect_names(client, admin, [
        ({"count": "3"}, [GAMMA, DELTA]),
        ({"count": "-4"}, [THREE]),
        ({"score": "2"}, [BETA]),
        ({"score": "2.0"}, [BETA]),
        ({"score": "-0.5"}, [THREE]),
        ({"score": "1.5"}, [ALPHA]),
        ({"flag": "true"}, [ALPHA, GAMMA]),
        ({"flag": "false"}, [BETA, DELTA]),
        ({"ref": REF_A}, [ALPHA, GAMMA]),
        ({"ref": REF_B}, [BETA]),
        ({"ref": OTHER_ID}, []),
        ({"when": "2026-02-01T12:30:00.250Z"}, [BETA]),
        ({"when": "2026-02-01T13:30:00.250+01:00"}, [BETA]),
        ({"when": "2026-01-01T00:00"}, [ALPHA]),
        ({"when": "2026-03-01T00:00:00"}, [GAMMA]),
        ({"name": "beta"}, [BETA]),
        ({"name": "3"}, [THREE]),  # a string property reads "3" as a string
        ({"name": "Beta"}, []),
        ({"tags": "x"}, [ALPHA, THREE]),  # an array matches when it contains the value
        ({"tags": "y"}, [ALPHA, BETA]),
        ({"tags": "q"}, []),
        ({"count": "3", "flag": "true"}, [GAMMA]),
        ({"ref": REF_A, "tags": "y"}, [ALPHA]),
    ])


# --- filter ------------------------------------------------------------------------------------

Filter = dict[str, Any] | Callable[[list[dict[str, Any]]], dict[str, Any]]
FILTERS: dict[str, list[tuple[Filter, list[str]]]] = {
    "comparison": [
        ({"count": {"$eq": 2}}, [BETA]),
        ({"count": {"$ne": 3}}, [ALPHA, BETA, THREE]),
        ({"count": {"$gt": 1, "$lte": 3}}, [BETA, GAMMA, DELTA]),
        ({"score": {"$gte": 2, "$lt": 3.5}}, [BETA]),
        ({"score": {"$lt": 0}}, [THREE]),
        ({"name": {"$in": [ALPHA, GAMMA, "nobody"]}}, [ALPHA, GAMMA]),
        ({"name": {"$nin": [ALPHA, GAMMA]}}, [BETA, DELTA, THREE]),
        ({"score": {"$exists": False}}, [DELTA]),
        ({"nested": {"$exists": True}}, [ALPHA, BETA, GAMMA]),
        ({"name": GAMMA}, [GAMMA]),
        ({}, NAMES),
    ],
    "logical": [
        ({"$and": [{"flag": True}, {"count": {"$gt": 1}}]}, [GAMMA]),
        ({"$or": [{"name": ALPHA}, {"count": 2}]}, [ALPHA, BETA]),
        ({"$nor": [{"flag": True}, {"count": 2}]}, [DELTA, THREE]),
        ({"count": {"$not": {"$gt": 1}}}, [ALPHA, THREE]),
        ({"$or": [{"$and": [{"flag": False}, {"count": 3}]}, {"name": THREE}]}, [DELTA, THREE]),
    ],
    "regex": [
        ({"name": {"$regex": "^[a-z]+$"}}, [ALPHA, BETA, GAMMA]),
        ({"name": {"$regex": "(?i)^d"}}, [DELTA]),
        ({"name": {"$regex": "a?" * 128}}, NAMES),  # exactly 256 characters
        ({"name": {"$not": {"$regex": "^a"}}}, [BETA, GAMMA, DELTA, THREE]),
    ],
    "arrays": [
        ({"tags": {"$size": 2}}, [ALPHA]),
        ({"tags": {"$size": 0}}, [GAMMA]),
        ({"tags": {"$all": ["x", "y"]}}, [ALPHA]),
        ({"tags": {"$all": ["x"]}}, [ALPHA, THREE]),
        ({"tags": {"$elemMatch": {"$regex": "^[wz]$"}}}, [THREE]),
        ({"tags": {"$elemMatch": {"$in": ["y", "z"]}}}, [ALPHA, BETA, THREE]),
        ({"tags": "y"}, [ALPHA, BETA]),
    ],
    "sub-fields": [
        ({"nested.a": {"$gte": 2}}, [BETA, GAMMA]),
        ({"nested.b": "p"}, [ALPHA]),
        ({"nested.b": {"$exists": False}}, [GAMMA, DELTA, THREE]),
        ({"nested": {"a": 3}}, [GAMMA]),
    ],
    "formats": [
        ({"ref": REF_B}, [BETA]),
        ({"ref": {"$ne": REF_A}}, [BETA, DELTA, THREE]),
        ({"ref": {"$in": [REF_B, OTHER_ID]}}, [BETA]),
        ({"ref": {"$nin": [REF_A]}}, [BETA, DELTA, THREE]),
        ({"when": "2026-02-01T13:30:00.250+01:00"}, [BETA]),
        ({"when": {"$gte": "2026-02-01T12:30:00.250Z"}}, [BETA, GAMMA]),
        ({"when": {"$gt": "2026-02-01T12:30:00.249Z"}}, [BETA, GAMMA]),
        ({"when": {"$lt": "2026-01-01T01:30+01:00"}}, [ALPHA]),
        ({"when": {"$in": ["2026-03-01T00:00:00.000Z"]}}, [GAMMA]),
        ({"$or": [{"ref": REF_B}, {"when": "2026-03-01T00:00Z"}]}, [BETA, GAMMA]),
    ],
    "system-fields": [
        (lambda rows: {"_id": rows[1]["_id"]}, [BETA]),
        (lambda rows: {"_id": {"$in": [rows[0]["_id"], rows[2]["_id"]]}}, [ALPHA, GAMMA]),
        (lambda rows: {"_id": {"$gt": rows[2]["_id"]}}, [DELTA, THREE]),
        (lambda rows: {"createdAt": rows[2]["createdAt"]}, [GAMMA]),
        (lambda rows: {"createdAt": {"$gte": rows[3]["createdAt"]}}, [DELTA, THREE]),
        (lambda rows: {"createdAt": {"$lt": TIME_FORMS["ms+02:00"](instant(rows[1]["createdAt"]))[0]}}, [ALPHA]),
        (lambda rows: {"updatedAt": rows[0]["updatedAt"]}, [ALPHA]),
        (lambda rows: {"owner": rows[0]["owner"]}, NAMES),
        (lambda rows: {"owner": {"$ne": rows[0]["owner"]}}, []),
        ({"owner": OTHER_ID}, []),
        ({"group": None}, NAMES),
        ({"access": {"$size": 0}}, NAMES),
    ],
}


@pytest.mark.parametrize("cases", FILTERS.values(), ids=FILTERS.keys())
async def test_filter(client, admin, rows, cases):
    queries = [(f(rows) if callable(f) else f, expected) for f, expected in cases]
    await expect_names(client, admin, [({"filter": json.dumps(q)}, expected) for q, expected in queries])


REFUSED_FILTERS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "operators": [
        ({"$where": "true"}, r"\$where"),
        ({"$expr": {"$eq": ["$count", 1]}}, r"\$expr"),
        ({"name": {"$function": {"body": "function() {return true}", "args": [], "lang": "js"}}}, r"\$function"),
        ({"$text": {"$search": "alpha"}}, r"\$text"),
        ({"name": {"$regex": "a", "$options": "i"}}, r"\$options"),
        ({"count": {"$mod": [2, 0]}}, r"\$mod"),
        ({"count": {"$type": "int"}}, r"\$type"),
        ({"$comment": "x"}, r"\$comment"),
        ({"$jsonSchema": {}}, r"\$jsonSchema"),
        ({"$and": [{"$where": "true"}]}, r"\$where"),
        ({"tags": {"$elemMatch": {"$where": "true"}}}, r"\$where"),
        ({"count": {"$gt": 1, "a": 2}}, "operator"),
    ],
    "regex": [
        ({"name": {"$regex": "a" * 257}}, r"\$regex"),
        ({"name": {"$regex": "("}}, r"\$regex|regular expression"),
        ({"name": {"$regex": 5}}, r"\$regex"),
    ],
    "fields": [
        ({"undeclared": 1}, "undeclared"),
        ({"$or": [{"name": ALPHA}, {"undeclared": 1}]}, "undeclared"),
        ({"pin": "alpha-pin"}, "pin"),
        ({"pin": {"$exists": True}}, "pin"),
        ({"$or": [{"name": ALPHA}, {"pin": "alpha-pin"}]}, "pin"),
        ({"pin.x": 1}, "pin"),
        ({"nested.$a": 1}, r"nested\.\$a"),
    ],
    "operator-in-value": [
        ({"nested": {"a": {"$gt": 1}}}, "operator"),
        ({"count": {"$in": [1, {"$gt": 0}]}}, "operator"),
        ({"count": {"$eq": {"$gt": 0}}}, "operator"),
    ],
    "operator-arguments": [
        ({"$or": []}, r"\$or"),
        ({"$and": {"name": ALPHA}}, r"\$and"),
        ({"count": {"$in": 3}}, r"\$in"),
        ({"count": {"$exists": 1}}, r"\$exists"),
        ({"tags": {"$size": -1}}, r"\$size"),
        ({"count": {"$not": 3}}, r"\$not"),
    ],
    "format-values": [
        ({"ref": "not-an-id"}, "objectid"),
        ({"_id": "xyz"}, "objectid"),
        ({"when": "yesterday"}, "date-time"),
        ({"createdAt": {"$gt": "2026-01-01"}}, "date-time"),
    ],
}


@pytest.mark.parametrize("cases", REFUSED_FILTERS.values(), ids=REFUSED_FILTERS.keys())
async def test_filter_refusals(client, admin, rows, cases):
    await expect_refused(client, admin, [({"filter": json.dumps(flt)}, pattern) for flt, pattern in cases])
    assert await names(client, admin) == NAMES


def nest(depth: int) -> dict[str, Any]:
    flt: dict[str, Any] = {"count": 2}
    for _ in range(depth):
        flt = {"$and": [flt]}
    return flt


async def test_nested_filters_within_the_bound_are_answered(client, admin, rows):
    assert await names(client, admin, {"filter": json.dumps(nest(5))}) == [BETA]


# --- refusals ---------------------------------------------------------------------------------
# Every refused value of every parameter is a unit test of storeengine.model.query (tests/test_query.py);
# here, one case of each kind shows the refusal reaches the client as the 400 envelope, through
# the query string (blank values, repeated keys, bracketed keys included).

REFUSALS: list[tuple[Params, str]] = [
    ({"limit": "0"}, "limit"), ({"limit": ""}, "limit"), ({"offset": "-1"}, "offset"),
    ({"only": "pin"}, "pin"), ({"only": "nested,nested.a"}, "nested.*sub-fields"),
    ({"meta": "true", "limit": "10"}, "limit"), ({"meta": ""}, "meta"),
    ({"from": "1767225600000", "to": "1767225600000"}, "from|before|to"), ({"to": "2", "end": "2"}, "end"),
    ({"from": "2026-02-30T00:00"}, "from"), ({"end": "yesterday"}, "end"),
    ({"count": "three"}, "count"), ({"when": "2026-01-01"}, "when"), ({"nested.a": "1"}, r"nested\.a"),
    ({"pin": "alpha-pin"}, "pin"), ({"filter": "[1]"}, "filter"), ({"filter": '{"$where": "1"}'}, r"\$where"),
    ({"filter": json.dumps(nest(40))}, "deep|nest"), ({"sort": "name,-name"}, "twice|duplicate|name"),
    ({"sort": "-pin"}, "pin"), ({"filter[name]": "1"}, re.escape("filter[name]")), ({"Limit": "1"}, "Limit"),
    ([("limit", "1"), ("limit", "2")], "limit"), ([("name", ALPHA), ("name", ALPHA)], "name"),
]


async def test_each_kind_of_bad_parameter_is_a_400_envelope(client, admin, rows):
    await expect_refused(client, admin, REFUSALS)
    assert await names(client, admin) == NAMES


# --- sort --------------------------------------------------------------------------------------

async def test_sort(client, admin, rows):
    reverse = NAMES[::-1]
    await expect_names(client, admin, [({"sort": sort}, expected) for sort, expected in [
        ("count", [THREE, ALPHA, BETA, GAMMA, DELTA]),
        ("-count", [GAMMA, DELTA, BETA, ALPHA, THREE]),  # the tie keeps _id order
        ("-count,name", [DELTA, GAMMA, BETA, ALPHA, THREE]),
        ("name", [THREE, DELTA, ALPHA, BETA, GAMMA]),
        ("-name", [GAMMA, BETA, ALPHA, DELTA, THREE]),
        ("score", [DELTA, THREE, ALPHA, BETA, GAMMA]),  # a missing value sorts first
        ("nested.a", [DELTA, THREE, ALPHA, BETA, GAMMA]),
        ("-when", [GAMMA, BETA, ALPHA, DELTA, THREE]),
        ("flag,-count", [THREE, DELTA, BETA, GAMMA, ALPHA]),
        ("-createdAt", reverse),
        ("updatedAt", NAMES),
        ("-_id", reverse),
        ("owner,-_id", reverse),
    ]])


async def test_paging_over_equal_sort_keys_never_repeats_or_skips(client, admin):
    ids = []
    for _ in range(25):
        r = await client.post(URL, json={"count": 7, "flag": True, "name": "same"}, headers=admin)
        assert r.status_code == 201
        ids.append(r.json()["_id"])
    for sort in ["count", "-count", "-flag,name", "createdAt"]:
        seen: list[str] = []
        for offset in range(0, 28, 7):
            page = await listing(client, admin, {"sort": sort, "offset": str(offset), "limit": "7"})
            assert len(page) == min(7, 25 - offset), (sort, offset)
            seen += [doc["_id"] for doc in page]
        assert seen == sorted(ids), sort  # each exactly once, ties broken by _id


# --- parameters ------------------------------------------------------------------------------

async def test_everything_together(client, admin, rows):
    params = {"from": rows[0]["createdAt"], "to": rows[4]["createdAt"], "flag": "false",
              "filter": json.dumps({"$or": [{"count": {"$gte": 2}}, {"tags": "x"}]}),
              "sort": "-name", "offset": "1", "limit": "1", "only": "name"}
    assert await listing(client, admin, params) == [{"_id": rows[3]["_id"], "name": DELTA}]


# --- access rules and write-only fields apply to every list ---------------------------------------

async def test_access_rules_apply_on_top_of_every_filter(client, admin, users, rows):
    _, alice = await users.user("alice")
    for name in ("mine-1", "mine-2"):
        assert (await client.post(URL, json={"name": name, "count": 2}, headers=alice)).status_code == 201
    admin_id = rows[0]["owner"]
    escape = json.dumps({"$or": [{"owner": admin_id}, {"name": {"$exists": True}}]})
    await expect_names(client, alice, [
        ({}, ["mine-1", "mine-2"]),
        ({"count": "2"}, ["mine-1", "mine-2"]),
        ({"filter": json.dumps({"owner": admin_id})}, []),
        ({"filter": escape}, ["mine-1", "mine-2"]),
        ({"sort": "-name", "offset": "1"}, ["mine-1"]),
    ])
    meta = await listing(client, alice, {"meta": "true", "filter": escape})
    assert (meta["total"], meta["first"]["name"], meta["last"]["name"]) == (2, "mine-1", "mine-2")
    assert (await listing(client, admin, {"meta": "true"}))["total"] == 7


async def test_user_passwords_are_never_filterable_or_sortable(client, admin):
    await expect_refused(client, admin, [
        ({"password": "admin-password-1"}, "password"),
        ({"filter": json.dumps({"password": "admin-password-1"})}, "password"),
        ({"filter": json.dumps({"password": {"$exists": True}})}, "password"),
        ({"filter": json.dumps({"_auth": {"$exists": True}})}, "_auth"),
        ({"sort": "password"}, "password"),
        ({"only": "password"}, "password"),
    ], url="/api/v1/users")
    users_list = (await client.get("/api/v1/users", headers=admin)).json()
    assert users_list and all("password" not in u and "_auth" not in u for u in users_list)
