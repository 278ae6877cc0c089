"""Property rules over HTTP (API.md 15): a property a caller may not read never surfaces
(answers, lists, meta, only, the feed, versions, aggregation); querying by it is the 400 of an
undeclared field; changing it without its x-write is 403."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

LANES = ("embedded", "wire")
STAFF = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "salary": {"type": "integer", "x-read": ["role:hr"], "x-write": ["role:hr"]},
        "notes": {"type": "string", "x-read": ["owner"]},
        "tier": {"type": "string", "x-admin-only": True},
        "level": {"type": "number", "x-write": ["role:hr"]},
    },
    "x-acl": {"read": ["authenticated"], "update": ["authenticated"]},
    "x-history": True,
}


# A store that refers to staff: an expanded staff entity is the caller's view of it.
# `auditor` refers to staff too, but only hr may read it.
DESKS = {"type": "object", "properties": {
    "staff": {"type": "string", "format": "objectid", "x-ref": "staff"},
    "auditor": {"type": "string", "format": "objectid", "x-ref": "staff", "x-read": ["role:hr"]}},
    "x-acl": {"read": ["authenticated"]}}


@pytest.fixture
def schema_dir(schema_dir: Path) -> Path:
    (schema_dir / "staff.json").write_text(json.dumps(STAFF))
    (schema_dir / "desks.json").write_text(json.dumps(DESKS))
    return schema_dir


@pytest.fixture
async def people(client: httpx.AsyncClient, users, admin):
    _, hr = await users.user("hr-person", roles=["hr"])
    _, plain = await users.user("plain-person")
    r = await client.post("/api/v1/staff", json={"name": "ann", "notes": "mine"}, headers=plain)
    assert r.status_code == 201, r.text
    entity = r.json()
    r = await client.patch(f"/api/v1/staff/{entity['_id']}", json={"salary": 100}, headers=hr)
    assert r.status_code == 200, r.text
    assert r.json()["salary"] == 100 and "notes" not in r.json()  # hr is not the owner of its notes
    return {"hr": hr, "plain": plain, "admin": admin, "id": entity["_id"]}


async def test_an_entity_answer_shows_each_caller_their_view(client, people, lane):
    path = f"/api/v1/staff/{people['id']}"
    hr, plain, admin = [(await client.get(path, headers=people[w])).json() for w in ("hr", "plain", "admin")]
    assert hr["salary"] == 100 and "notes" not in hr
    assert "salary" not in plain and plain["notes"] == "mine"
    assert admin["salary"] == 100 and admin["notes"] == "mine"


async def test_lists_and_meta_leave_it_out(client, people, lane):
    page = (await client.get("/api/v1/staff", headers=people["plain"])).json()
    assert "salary" not in page[0] and page[0]["notes"] == "mine"
    meta = (await client.get("/api/v1/staff", params={"meta": "true"}, headers=people["plain"])).json()
    assert "salary" not in meta["first"] and "salary" not in meta["last"]
    assert (await client.get("/api/v1/staff", headers=people["hr"])).json()[0]["salary"] == 100


@pytest.mark.parametrize("params", [
    {"only": "{}"}, {"sort": "{}"}, {"sort": "-{}"}, {"filter": '{{"{}": 1}}'},
    {"filter": '{{"{}": {{"$exists": true}}}}'}, {"{}": "1"},
])
async def test_querying_by_it_is_the_400_of_an_undeclared_field(client, people, lane, params):
    def render(name: str) -> dict[str, str]:
        return {k.format(name): v.format(name) for k, v in params.items()}

    for prop in ("salary", "notes"):  # never readable by plain everywhere (notes: by entity)
        refused = await client.get("/api/v1/staff", params=render(prop), headers=people["plain"])
        undeclared = await client.get("/api/v1/staff", params=render("nosuch"), headers=people["plain"])
        assert refused.status_code == 400, (prop, refused.text)
        assert refused.json() == json.loads(undeclared.text.replace("nosuch", prop))
    ok = await client.get("/api/v1/staff", params=render("salary"), headers=people["hr"])
    assert ok.status_code == 200, ok.text


async def test_only_of_a_readable_property_works(client, people, lane):
    r = await client.get("/api/v1/staff", params={"only": "salary"}, headers=people["hr"])
    assert r.json() == [{"_id": people["id"], "salary": 100}]


@pytest.mark.parametrize("params", [{"group": "salary"}, {"sum": "salary"}, {"max": "notes"}])
async def test_aggregation_refuses_it(client, people, lane, params):
    r = await client.get("/api/v1/staff/_aggregate", params=params, headers=people["plain"])
    assert r.status_code == 400, r.text
    r = await client.get("/api/v1/staff/_aggregate", params=params, headers=people["admin"])
    assert r.status_code == 200, r.text


async def test_writes_that_change_it_without_x_write_are_403(client, people, lane):
    path = f"/api/v1/staff/{people['id']}"
    plain = people["plain"]
    assert (await client.patch(path, json={"salary": 1}, headers=plain)).status_code == 403
    assert (await client.patch(path, json={"salary": None}, headers=plain)).status_code == 403
    assert (await client.patch(path, json={"tier": "gold"}, headers=plain)).status_code == 403
    assert (await client.post("/api/v1/staff", json={"name": "b", "salary": 5}, headers=plain)).status_code == 403
    # leaving it as it is is fine; a PUT without what the caller cannot read keeps it
    assert (await client.patch(path, json={"name": "anne"}, headers=plain)).status_code == 200
    r = await client.put(path, json={"name": "ann", "notes": "mine"}, headers=plain)
    assert r.status_code == 200, r.text
    assert "salary" not in r.json()
    assert (await client.get(path, headers=people["hr"])).json()["salary"] == 100
    assert (await client.patch(path, json={"tier": "gold"}, headers=people["admin"])).status_code == 200


async def test_a_value_sent_back_unchanged_says_nothing_and_changes_nothing(client, people, lane):
    """A caller who may neither read nor write a property cannot confirm a guess of its value by
    sending it (the same value would pass as no change): 403 whatever the value. One who reads
    it but may not write it may send it back; its stored value then stays as it is (3.0 for 3
    is equal, but is not what was stored)."""
    path = f"/api/v1/staff/{people['id']}"
    for guess in (100, 99, None):
        r = await client.patch(path, json={"salary": guess}, headers=people["plain"])
        assert r.status_code == 403, (guess, r.text)
        r = await client.put(path, json={"name": "ann", "notes": "mine", "salary": guess}, headers=people["plain"])
        assert r.status_code == 403, (guess, r.text)
    r = await client.patch(path, json={"level": 3}, headers=people["admin"])
    assert r.status_code == 200, r.text
    r = await client.patch(path, json={"level": 3.0, "name": "anne"}, headers=people["plain"])
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "anne" and type(r.json()["level"]) is int
    assert type((await client.get(path, headers=people["admin"])).json()["level"]) is int
    assert (await client.patch(path, json={"level": 4}, headers=people["plain"])).status_code == 403


async def test_the_feed_and_versions_leave_it_out(client, people, lane):
    changes = (await client.get("/api/v1/staff/_changes", headers=people["plain"])).json()["changes"]
    assert changes and all("salary" not in c["entity"] for c in changes)
    assert any(c["entity"].get("salary") == 100
               for c in (await client.get("/api/v1/staff/_changes", headers=people["hr"])).json()["changes"])
    versions = (await client.get(f"/api/v1/staff/{people['id']}/_versions", headers=people["plain"])).json()
    assert len(versions) == 2 and all("salary" not in v["entity"] for v in versions)
    hr_versions = (await client.get(f"/api/v1/staff/{people['id']}/_versions", headers=people["hr"])).json()
    assert hr_versions[-1]["entity"]["salary"] == 100 and all("notes" not in v["entity"] for v in hr_versions)


@pytest.mark.parametrize("keyword", ["x-read", "x-write"])
async def test_an_unknown_rule_is_a_schema_error_and_the_store_keeps_its_last_file(client, people, schema_dir, lane,
                                                                                   keyword):
    salary = {**STAFF["properties"]["salary"], keyword: ["hr"]}
    bad = {**STAFF, "properties": {**STAFF["properties"], "salary": salary}}
    (schema_dir / "staff.json").write_text(json.dumps(bad))
    for _ in range(100):
        status = (await client.get("/api/v1/_schemas", headers=people["admin"])).json()["staff"]
        if status["error"]:
            break
        await asyncio.sleep(0.05)
    assert f"property 'salary': {keyword}: unknown rules ['hr']" in status["error"]
    assert status["schema"] == STAFF  # the last valid file
    # the last valid rules still hold: hr reads and writes salary, plain neither
    path = f"/api/v1/staff/{people['id']}"
    r = await client.get(path, headers=people["plain"])
    assert r.status_code == 200 and "salary" not in r.json()
    assert (await client.patch(path, json={"salary": 7}, headers=people["plain"])).status_code == 403
    r = await client.patch(path, json={"salary": 7}, headers=people["hr"])
    assert r.status_code == 200 and r.json()["salary"] == 7


async def test_only_of_a_hidden_property_says_nothing_of_any_entity(client, people, users, lane):
    """`only=<property>` the caller may not read is the 400 of an undeclared field, the same whether
    the entities asked for hold it or not, and whether the caller may read it on some of them."""
    _, other = await users.user("other-person")
    r = await client.post("/api/v1/staff", json={"name": "bob"}, headers=other)  # no notes, no salary
    assert r.status_code == 201, r.text
    bare = r.json()["_id"]

    async def answer(who: str, prop: str, entity: str) -> tuple[int, str]:
        params = {"only": prop, "filter": json.dumps({"_id": entity})}
        got = await client.get("/api/v1/staff", params=params, headers=people.get(who, other))
        return got.status_code, got.text.replace(prop, "PROP")

    for who, props in (("plain", ("salary", "notes")), ("hr", ("notes",)), ("other", ("salary", "notes"))):
        for prop in props:
            undeclared = await answer(who, "nosuch", people["id"])
            assert undeclared[0] == 400
            assert await answer(who, prop, people["id"]) == undeclared, (who, prop)  # holds it
            assert await answer(who, prop, bare) == undeclared, (who, prop)  # does not


async def test_an_expanded_entity_is_the_callers_view(client, people, lane):
    r = await client.post("/api/v1/desks", json={"staff": people["id"]}, headers=people["plain"])
    assert r.status_code == 201, r.text
    desk = r.json()["_id"]
    for who, shown, hidden in (("plain", "notes", "salary"), ("hr", "salary", "notes")):
        one = (await client.get(f"/api/v1/desks/{desk}", params={"expand": "staff"}, headers=people[who])).json()
        page = (await client.get("/api/v1/desks", params={"expand": "staff"}, headers=people[who])).json()
        for expanded in (one["_expand"]["staff"], page[0]["_expand"]["staff"]):
            assert shown in expanded and hidden not in expanded, (who, expanded)


async def test_a_nested_list_never_goes_through_a_hidden_reference(client, people, lane):
    """`via` naming a reference the caller may not read is the 400 of any property that is not a
    reference to the parent (it would filter by the hidden value), and the list of references a
    400 offers names only the readable ones."""
    r = await client.post("/api/v1/desks", json={"staff": people["id"], "auditor": people["id"]},
                          headers=people["admin"])
    assert r.status_code == 201, r.text
    nested = f"/api/v1/staff/{people['id']}/desks"
    hidden = await client.get(nested, params={"via": "auditor"}, headers=people["plain"])
    unknown = await client.get(nested, params={"via": "nosuch"}, headers=people["plain"])
    assert hidden.status_code == unknown.status_code == 400, hidden.text
    assert hidden.json()["message"].replace("auditor", "nosuch") == unknown.json()["message"]
    assert "auditor" not in unknown.json()["message"]
    # without via, plain has one reference to staff: no choice to make
    assert [d["_id"] for d in (await client.get(nested, headers=people["plain"])).json()] == [r.json()["_id"]]
    assert [d["_id"] for d in (await client.get(nested, params={"via": "auditor"}, headers=people["hr"])).json()] \
        == [r.json()["_id"]]
    assert (await client.get(nested, headers=people["hr"])).status_code == 400  # hr sees both: via= is needed


async def test_the_api_description_is_each_callers_view(client, people, lane):
    from openapi_spec_validator import validate

    from storeengine.http.openapi_shapes import SOME_ENTITIES

    docs = {}
    for who in ("plain", "hr", "admin"):
        r = await client.get("/api/v1/_openapi.json", headers=people[who])
        assert r.status_code == 200, r.text
        docs[who] = r.json()
    validate(docs["plain"])

    def entity(who: str) -> dict:
        return docs[who]["components"]["schemas"]["staff"]

    def filters(who: str, path: str) -> set[str]:
        return {p["name"] for p in docs[who]["paths"][path]["get"]["parameters"]}

    # a property read on no entity is left out, as if undeclared; one read on some is optional and says so
    assert "salary" not in entity("plain")["properties"] and "salary" not in entity("plain")["required"]
    assert entity("plain")["properties"]["notes"]["description"] == SOME_ENTITIES
    assert "notes" not in entity("plain")["required"]
    assert "salary" not in docs["plain"]["components"]["schemas"]["staff.partial"]["properties"]
    for path in ("/api/v1/staff", "/api/v1/staff/_aggregate"):
        assert {"name", "tier"} <= filters("plain", path) and not {"salary", "notes"} & filters("plain", path)
    assert "description" not in entity("hr")["properties"]["salary"] and "salary" in filters("hr", "/api/v1/staff")
    assert entity("hr")["properties"]["notes"]["description"] == SOME_ENTITIES
    assert {"salary", "notes"} <= filters("admin", "/api/v1/staff")
    assert all("description" not in entity("admin")["properties"][p] for p in ("salary", "notes"))
    # what the document promises matches what the caller gets
    got = (await client.get(f"/api/v1/staff/{people['id']}", headers=people["plain"])).json()
    assert set(got) <= set(entity("plain")["properties"])
    # the request bodies stay the file's (writing is x-write's business)
    assert "salary" in docs["plain"]["components"]["schemas"]["staff.body"]["properties"]
