"""References between stores over HTTP (API.md section 13): checked ids on writes, `expand`,
nested lists, and what each costs in queries (counted through a wrapping storage seam)."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storeengine.app import create_app
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.api import StorageAPI
from storeengine.store.carried import SEQ as CARRIED_SEQ
from tests.conftest import Users, lifespan
from tests.paths import TESTS

SCHEMAS = TESTS / "schemas_refs"
API = "/api/v1"
NOT_READABLE = "must be the id of a {} entity you may read"


class Counting:
    """The app's storage seam, counting every `find` / `find_one` per collection."""

    def __init__(self, real: StorageAPI) -> None:
        self.real = real
        self.embedded, self.database_name = real.embedded, real.database_name
        self.calls: list[tuple[str, str, Any]] = []

    def collection(self, name: str) -> Any:
        return CountingCollection(self, name, self.real.collection(name))

    async def ping(self) -> bool:
        return await self.real.ping()

    async def close(self) -> None:
        await self.real.close()

    def reset(self) -> None:
        self.calls.clear()

    def reads(self, store: str) -> int:
        """Reads of the store's entities; not the change feed's (a list's X-Change-Cursor reads the
        changes entities carry, by `_change.seq`: the feed's cost, not the expansion's)."""
        reads = ("find", "find_one", "count", "find_answer")  # find_answer: the embedded database's page
        return sum(1 for name, op, query in self.calls
                   if name == store and op in reads and CARRIED_SEQ not in query)


class CountingCollection:
    def __init__(self, owner: Counting, name: str, real: Any) -> None:
        self.owner, self.name, self.real = owner, name, real

    def __getattr__(self, op: str) -> Any:
        method = getattr(self.real, op)
        if not inspect.iscoroutinefunction(method):  # a question, not a read (can_drop)
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.owner.calls.append((self.name, op, args[0] if args else None))
            return await method(*args, **kwargs)

        return call


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


@pytest.fixture
async def counting(settings: Settings) -> Counting:
    return Counting(connect(settings))


@pytest.fixture
async def app(settings: Settings, counting: Counting) -> AsyncIterator[Any]:
    application = create_app(settings, storage=counting)
    async with lifespan(application):
        yield application


class World:
    """Alice and Bob, each with a portfolio; customers of Alice's portfolio."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def make(self, users: Users) -> World:
        self.alice_id, self.alice = await users.user("alice")
        self.bob_id, self.bob = await users.user("bob")
        self.mine = await self.post("portfolios", {"title": "Alice's", "code": "secret", "manager": self.alice_id})
        self.theirs = await self.post("portfolios", {"title": "Bob's"}, self.bob)
        self.c1 = await self.post("customers", {"name": "c1", "portfolio": self.mine["_id"], "rank": 2})
        self.c2 = await self.post("customers", {"name": "c2", "portfolio": self.mine["_id"], "rank": 1})
        return self

    async def post(self, store: str, body: dict[str, Any], who: dict[str, str] | None = None) -> dict[str, Any]:
        r = await self.client.post(f"{API}/{store}", json=body, headers=who or self.alice)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def get(self, path: str, who: dict[str, str] | None = None, status: int = 200) -> Any:
        r = await self.client.get(API + path, headers=who or self.alice)
        assert r.status_code == status, r.text
        return r.json()


@pytest.fixture
async def world(client: httpx.AsyncClient, users: Users) -> World:
    return await World(client).make(users)


def refused(r: httpx.Response, fields: dict[str, str]) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["fields"] == fields and r.json()["tags"] == ["error_validation"]


# --- checked writes -----------------------------------------------------------------------------

async def test_a_reference_to_a_readable_entity_is_stored_and_sent_as_an_id(world: World) -> None:
    assert world.c1["portfolio"] == world.mine["_id"]
    task = await world.post("tasks", {"title": "t", "customer": world.c1["_id"], "watchers": [world.mine["_id"]]})
    assert task["watchers"] == [world.mine["_id"]]


@pytest.mark.lanes("embedded", "wire")
async def test_missing_and_unreadable_ids_get_the_same_400(client: httpx.AsyncClient, world: World) -> None:
    message = {"portfolio": NOT_READABLE.format("portfolios")}
    missing = "0123456789abcdef01234567"
    for bad in (missing, world.theirs["_id"]):
        refused(await client.post(f"{API}/customers", json={"portfolio": bad}, headers=world.alice), message)
    r = await client.post(f"{API}/tasks", json={"watchers": [world.mine["_id"], world.theirs["_id"]]},
                          headers=world.alice)
    refused(r, {"watchers": NOT_READABLE.format("portfolios")})
    # Bob may refer to his own portfolio, not to Alice's.
    await world.post("customers", {"portfolio": world.theirs["_id"]}, world.bob)


@pytest.mark.lanes("embedded", "wire")
async def test_every_failing_reference_is_named(client: httpx.AsyncClient, world: World) -> None:
    body = {"customer": "0123456789abcdef01234567", "watchers": [world.theirs["_id"]]}
    refused(await client.post(f"{API}/tasks", json=body, headers=world.alice),
            {"customer": NOT_READABLE.format("customers"), "watchers": NOT_READABLE.format("portfolios")})


async def test_an_id_that_is_not_an_objectid_is_a_validation_error(client: httpx.AsyncClient, world: World) -> None:
    for body in ({"portfolio": "nope"}, {"portfolio": 12}):
        r = await client.post(f"{API}/customers", json=body, headers=world.alice)
        assert r.status_code == 400 and set(r.json()["fields"]) == {"portfolio"}, r.text
    r = await client.post(f"{API}/tasks", json={"watchers": ["nope"]}, headers=world.alice)
    assert r.status_code == 400 and list(r.json()["fields"]) == ["watchers.0"], r.text


async def test_null_or_nothing_is_allowed(world: World) -> None:
    await world.post("customers", {"name": "x", "portfolio": None})
    await world.post("customers", {"name": "y"})


async def test_a_store_that_does_not_exist_yet_refuses_writes_until_it_exists(
        client: httpx.AsyncClient, world: World, schema_dir: Path) -> None:
    r = await client.post(f"{API}/tasks", json={"project": world.mine["_id"]}, headers=world.alice)
    refused(r, {"project": "refers to the store projects, which does not exist"})
    (schema_dir / "projects.json").write_text(json.dumps({"type": "object", "properties": {}}))
    for _ in range(50):  # the running server picks the new file up within its poll interval
        r = await client.post(f"{API}/projects", json={}, headers=world.alice)
        if r.status_code == 201:
            break
        await asyncio.sleep(0.1)
    project = r.json()
    await world.post("tasks", {"project": project["_id"]})


@pytest.mark.lanes("embedded", "wire")
async def test_updates_check_the_ids_they_add(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/customers/{world.c1['_id']}"
    r = await client.patch(url, json={"portfolio": world.theirs["_id"]}, headers=world.alice)
    refused(r, {"portfolio": NOT_READABLE.format("portfolios")})
    r = await client.put(url, json={"name": "c1", "portfolio": world.theirs["_id"]}, headers=world.alice)
    refused(r, {"portfolio": NOT_READABLE.format("portfolios")})
    # A dangling reference (its entity deleted) does not block unrelated edits: only added ids are asked.
    r = await client.delete(f"{API}/portfolios/{world.mine['_id']}", headers=world.alice)
    assert r.status_code == 200
    r = await client.patch(url, json={"name": "renamed"}, headers=world.alice)
    assert r.status_code == 200 and r.json()["portfolio"] == world.mine["_id"], r.text
    r = await client.patch(url, json={"portfolio": None}, headers=world.alice)
    assert r.status_code == 200, r.text


@pytest.mark.lanes("embedded", "wire")
async def test_one_query_per_reference_property_per_write(client: httpx.AsyncClient, world: World,
                                                          counting: Counting) -> None:
    many = [world.mine["_id"]] + [(await world.post("portfolios", {"title": str(i)}))["_id"] for i in range(5)]
    counting.reset()
    body = {"customer": world.c1["_id"], "reviewer": world.c2["_id"], "watchers": many}
    await world.post("tasks", body)
    assert counting.reads("portfolios") == 1 and counting.reads("customers") == 1  # one per store referred to
    counting.reset()
    await world.post("tasks", {"title": "no references"})
    assert counting.reads("portfolios") == counting.reads("customers") == 0


# --- expand --------------------------------------------------------------------------------------

async def test_expand_on_get_one_is_the_entity_as_its_own_get(world: World) -> None:
    got = await world.get(f"/customers/{world.c1['_id']}?expand=portfolio,owner")
    own = await world.get(f"/portfolios/{world.mine['_id']}")
    assert "code" not in own
    assert got["_expand"]["portfolio"] == own
    assert got["_expand"]["owner"] == await world.get(f"/users/{world.alice_id}")
    assert {k: v for k, v in got.items() if k != "_expand"} == world.c1


@pytest.mark.lanes("embedded", "wire")
async def test_unreadable_or_missing_references_are_left_out(client: httpx.AsyncClient, world: World) -> None:
    bobs = await world.post("customers", {"name": "b", "portfolio": world.theirs["_id"]}, world.bob)
    got = await world.get(f"/customers/{bobs['_id']}?expand=portfolio,owner")
    assert got["_expand"] == {}  # Alice may read neither Bob's portfolio nor Bob
    # An array keeps the readable ones: one of Alice's two watched portfolios is deleted afterwards.
    task = await world.post("tasks", {"watchers": [world.mine["_id"]]})
    other = await world.post("portfolios", {"title": "second"})
    r = await client.patch(f"{API}/tasks/{task['_id']}", json={"watchers": [other["_id"], world.mine["_id"]]},
                           headers=world.alice)
    assert r.status_code == 200
    await client.delete(f"{API}/portfolios/{other['_id']}", headers=world.alice)
    got = await world.get(f"/tasks/{task['_id']}?expand=watchers")
    assert [p["_id"] for p in got["_expand"]["watchers"]] == [world.mine["_id"]]


@pytest.mark.lanes("embedded", "wire")
async def test_array_references_keep_their_order(world: World) -> None:
    more = [(await world.post("portfolios", {"title": str(i)}))["_id"] for i in range(4)]
    order = [more[2], world.mine["_id"], more[0], more[3]]
    task = await world.post("tasks", {"watchers": order})
    got = await world.get(f"/tasks/{task['_id']}?expand=watchers")
    assert [p["_id"] for p in got["_expand"]["watchers"]] == order


@pytest.mark.lanes("embedded", "wire")
async def test_expand_three_levels_and_a_cycle(world: World, client: httpx.AsyncClient) -> None:
    r = await client.patch(f"{API}/portfolios/{world.mine['_id']}", json={"lead": world.c2["_id"]},
                           headers=world.alice)
    assert r.status_code == 200, r.text
    got = await world.get(f"/customers/{world.c1['_id']}?expand=portfolio.lead.portfolio,portfolio.manager")
    portfolio = got["_expand"]["portfolio"]
    assert portfolio["_expand"]["manager"]["_id"] == world.alice_id
    lead = portfolio["_expand"]["lead"]
    assert lead["_id"] == world.c2["_id"] and lead["_expand"]["portfolio"]["_id"] == world.mine["_id"]
    assert "_expand" not in lead["_expand"]["portfolio"]


@pytest.mark.parametrize("expand", [
    "name", "nothing", "portfolio.title", "portfolio.lead.portfolio.lead", "", "portfolio..lead",
    ",".join(["owner"] * 11), "owner.password",
])
async def test_bad_expand_is_a_400(world: World, expand: str) -> None:
    for path in (f"/customers/{world.c1['_id']}", "/customers", "/customers?meta=true",
                 f"/portfolios/{world.mine['_id']}/customers"):
        sep = "&" if "?" in path else "?"
        body = await world.get(f"{path}{sep}expand={expand}", status=400)
        assert body["code"] == "400" and "expand" in body["message"]


async def test_expand_given_twice_is_a_400(world: World) -> None:
    await world.get("/customers?expand=portfolio&expand=owner", status=400)
    await world.get(f"/customers/{world.c1['_id']}?expand=portfolio&expand=owner", status=400)


@pytest.mark.lanes("embedded", "wire")
async def test_expand_on_lists_and_meta(world: World) -> None:
    listed = await world.get("/customers?expand=portfolio&sort=rank")
    assert [c["name"] for c in listed] == ["c2", "c1"]
    assert all(c["_expand"]["portfolio"]["_id"] == world.mine["_id"] for c in listed)
    meta = await world.get("/customers?meta=true&expand=portfolio")
    assert meta["total"] == 2
    assert meta["first"]["_expand"]["portfolio"]["title"] == "Alice's"
    assert meta["last"]["_expand"]["portfolio"]["title"] == "Alice's"
    only = await world.get("/customers?only=name&expand=portfolio")
    assert only[0]["_expand"]["portfolio"]["_id"] == world.mine["_id"] and "rank" not in only[0]
    assert await world.get("/customers?meta=true&expand=portfolio&name=nobody") == {
        "total": 0, "first": None, "last": None}


@pytest.mark.lanes("embedded", "wire")
async def test_a_listed_array_reference_keeps_the_found_ones_in_order(client: httpx.AsyncClient,
                                                                     world: World) -> None:
    more = [(await world.post("portfolios", {"title": str(i)}))["_id"] for i in range(3)]
    await world.post("tasks", {"title": "a", "watchers": [more[2], more[1], more[0], more[2]]})
    await world.post("tasks", {"title": "b", "watchers": []})
    await world.post("tasks", {"title": "c", "customer": world.c1["_id"]})
    await client.delete(f"{API}/portfolios/{more[0]}", headers=world.alice)
    listed = {t["title"]: t["_expand"] for t in await world.get("/tasks?expand=watchers,customer")}
    assert [p["_id"] for p in listed["a"]["watchers"]] == [more[2], more[1], more[2]]  # the deleted one left out
    assert listed["b"] == {"watchers": []}
    assert listed["c"] == {"customer": await world.get(f"/customers/{world.c1['_id']}")}


@pytest.mark.lanes("embedded", "wire")
async def test_a_stored_member_named_expand_is_replaced_by_the_expansion(world: World, counting: Counting) -> None:
    """`_`-names cannot be written through the API; one written around it (an import, a migration)
    is not mixed into the server's `_expand`, at any level, listed or not."""
    from bson import ObjectId
    for store, entity in (("customers", world.c1), ("customers", world.c2), ("portfolios", world.mine)):
        stale = {"$set": {"_expand": {"stale": 1, "portfolio": "stale"}}}
        assert await counting.real.collection(store).update_if({"_id": ObjectId(entity["_id"])}, stale)
    expected = {"portfolio": {**await world.get(f"/portfolios/{world.mine['_id']}?expand=manager")}}
    assert expected["portfolio"]["_expand"] == {"manager": await world.get(f"/users/{world.alice_id}")}
    got = await world.get(f"/customers/{world.c1['_id']}?expand=portfolio.manager")
    assert got["_expand"] == expected
    listed = await world.get("/customers?expand=portfolio.manager")
    assert [c["_expand"] for c in listed] == [expected, expected]


async def test_a_property_named_expand_is_filtered_through_filter_only(world: World) -> None:
    await world.post("tasks", {"title": "t", "expand": "x"})
    await world.get("/tasks?expand=x", status=400)
    assert len(await world.get('/tasks?filter={"expand":"x"}')) == 1


@pytest.mark.lanes("embedded", "wire")
async def test_a_page_costs_one_query_per_path_and_level(world: World, counting: Counting) -> None:
    portfolios = [(await world.post("portfolios", {"title": str(i), "manager": world.alice_id}))["_id"]
                  for i in range(5)]
    for i in range(30):
        await world.post("customers", {"name": f"n{i}", "portfolio": portfolios[i % 5]})
    counting.reset()
    listed = await world.get("/customers?expand=portfolio,portfolio.manager,owner")
    assert len(listed) == 32 and all("manager" in c["_expand"]["portfolio"]["_expand"] for c in listed)
    assert counting.reads("customers") == 1
    assert counting.reads("portfolios") == 1
    assert counting.reads("users") <= 2 + 1  # manager (level 2) + owner (level 1), + the bearer's own lookup
    # find_answer: the embedded database answers an expansion as JSON (store/encoded.py)
    expanded_users = [q for name, op, q in counting.calls if name == "users" and op in ("find", "find_answer")]
    assert len(expanded_users) == 2


async def test_expansion_applies_the_callers_read_rules_inside_the_query(world: World, counting: Counting) -> None:
    counting.reset()
    await world.get(f"/customers/{world.c1['_id']}?expand=portfolio")
    (query,) = [q for name, op, q in counting.calls if name == "portfolios"]
    assert set(query) == {"_id", "$or"}, query  # {_id: {$in: [...]}} side by side with Alice's read filter


# --- users.groups: the built-in reference of section 4 -------------------------------------------

@pytest.mark.lanes("embedded", "wire")
async def test_a_users_groups_refer_to_groups(client: httpx.AsyncClient, admin: dict[str, str], users: Users) -> None:
    """`users.groups` holds group ids (section 4), so it is a reference (section 13): an admin may
    not put a user in a group that does not exist, and members see their groups expanded."""
    staff, other = await users.group("staff"), await users.group("other")
    missing = "0123456789abcdef01234567"
    body = {"login": "ann", "password": "password-123", "groups": [staff, missing]}
    refused(await client.post(f"{API}/users", json=body, headers=admin), {"groups": NOT_READABLE.format("groups")})
    ann_id, ann = await users.user("ann", groups=[staff])
    refused(await client.patch(f"{API}/users/{ann_id}", json={"groups": [staff, missing]}, headers=admin),
            {"groups": NOT_READABLE.format("groups")})
    r = await client.patch(f"{API}/users/{ann_id}", json={"groups": [other, staff]}, headers=admin)
    assert r.status_code == 200, r.text
    # Ann reads herself with her groups expanded: she is a member of both, so both show, in order.
    me = (await client.get(f"{API}/users/{ann_id}?expand=groups", headers=ann)).json()
    assert [g["name"] for g in me["_expand"]["groups"]] == ["other", "staff"]
    # The group's members as a nested list (users also have the system field `group`: via chooses).
    bob_id, _ = await users.user("bob", groups=[staff])
    several = (await client.get(f"{API}/groups/{staff}/users", headers=admin)).json()
    assert "group" in several["message"] and "groups" in several["message"]
    members = (await client.get(f"{API}/groups/{staff}/users?via=groups&sort=login&only=login", headers=admin)).json()
    assert members == [{"_id": ann_id, "login": "ann"}, {"_id": bob_id, "login": "bob"}]
    mine = (await client.get(f"{API}/groups/{staff}/users?via=groups", headers=ann)).json()
    assert [u["_id"] for u in mine] == [ann_id]


# --- nested lists --------------------------------------------------------------------------------

@pytest.mark.lanes("embedded", "wire")
async def test_nested_list_of_a_readable_parent(world: World) -> None:
    await world.post("customers", {"name": "elsewhere"})
    listed = await world.get(f"/portfolios/{world.mine['_id']}/customers?sort=-rank&expand=portfolio")
    assert [c["name"] for c in listed] == ["c1", "c2"]
    assert listed[0]["_expand"]["portfolio"]["_id"] == world.mine["_id"]
    assert await world.get(f"/portfolios/{world.mine['_id']}/customers?meta=true&only=name") == {
        "total": 2, "first": {"_id": world.c1["_id"], "name": "c1"}, "last": {"_id": world.c2["_id"], "name": "c2"}}
    assert len(await world.get(f"/portfolios/{world.mine['_id']}/customers?limit=1&offset=1")) == 1
    assert [c["name"] for c in await world.get(f"/portfolios/{world.mine['_id']}/customers?rank=1")] == ["c2"]
    assert await world.get(f'/portfolios/{world.mine["_id"]}/customers?filter={{"rank":{{"$gt":1}}}}&only=rank') == [
        {"_id": world.c1["_id"], "rank": 2}]


async def test_nested_list_answers_have_the_change_cursor(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"{API}/portfolios/{world.mine['_id']}/customers", headers=world.alice)
    assert r.status_code == 200 and "x-change-cursor" in r.headers


async def test_the_parent_must_be_readable(world: World) -> None:
    for parent in (world.theirs["_id"], "0123456789abcdef01234567", "not-an-id"):
        body = await world.get(f"/portfolios/{parent}/customers", status=404)
        assert body["tags"] == ["error_not_found"]


async def test_the_child_must_refer_to_the_parent(world: World) -> None:
    await world.get(f"/portfolios/{world.mine['_id']}/plain", status=404)
    await world.get(f"/portfolios/{world.mine['_id']}/nowhere", status=404)
    await world.get(f"/customers/{world.c1['_id']}/customers", status=404)


@pytest.mark.lanes("embedded", "wire")
async def test_several_references_need_via(world: World) -> None:
    t1 = await world.post("tasks", {"title": "1", "customer": world.c1["_id"], "reviewer": world.c2["_id"]})
    t2 = await world.post("tasks", {"title": "2", "customer": world.c2["_id"], "reviewer": world.c1["_id"]})
    body = await world.get(f"/customers/{world.c1['_id']}/tasks", status=400)
    assert "customer" in body["message"] and "reviewer" in body["message"]
    assert [t["_id"] for t in await world.get(f"/customers/{world.c1['_id']}/tasks?via=customer")] == [t1["_id"]]
    assert [t["_id"] for t in await world.get(f"/customers/{world.c1['_id']}/tasks?via=reviewer")] == [t2["_id"]]
    for bad in ("title", "watchers", "owner", "nothing"):
        body = await world.get(f"/customers/{world.c1['_id']}/tasks?via={bad}", status=400)
        assert "via" in body["message"]
    await world.get("/customers?via=customer", status=400)


@pytest.mark.lanes("embedded", "wire")
async def test_owner_and_array_references_nest_too(world: World) -> None:
    task = await world.post("tasks", {"watchers": [world.mine["_id"]]})
    assert [t["_id"] for t in await world.get(f"/portfolios/{world.mine['_id']}/tasks")] == [task["_id"]]
    body = await world.get(f"/users/{world.alice_id}/portfolios", status=400)  # owner and manager
    assert "owner" in body["message"] and "manager" in body["message"]
    mine = await world.get(f"/users/{world.alice_id}/portfolios?via=owner")
    assert [p["_id"] for p in mine] == [world.mine["_id"]]
    await world.get(f"/users/{world.bob_id}/portfolios?via=owner", status=404)  # Alice may not read Bob


async def test_acl_and_underscore_children_keep_their_meaning(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"{API}/portfolios/{world.mine['_id']}/acl", headers=world.alice)
    assert r.status_code == 405
    r = await client.get(f"{API}/portfolios/{world.mine['_id']}/_restore", headers=world.alice)
    assert r.status_code == 405


async def test_nested_lists_need_credentials(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"{API}/portfolios/{world.mine['_id']}/customers")
    assert r.status_code == 401


# --- OpenAPI -------------------------------------------------------------------------------------

async def test_openapi_shows_references_expand_and_nested_lists(client: httpx.AsyncClient, world: World) -> None:
    from openapi_spec_validator import validate

    doc = await world.get("/_openapi.json")
    validate(doc)
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    customer = schemas["customers"]["properties"]
    assert customer["portfolio"]["x-ref"] == "portfolios"
    assert customer["_expand"]["properties"]["portfolio"] == {"$ref": "#/components/schemas/portfolios"}
    assert schemas["tasks"]["properties"]["_expand"]["properties"]["watchers"]["type"] == "array"
    assert schemas["tasks"]["properties"]["_expand"]["properties"]["project"] == {"type": "object"}
    assert "expand" in [p["name"] for p in paths["/api/v1/customers"]["get"]["parameters"]]
    assert "expand" in [p["name"] for p in paths["/api/v1/customers/{id}"]["get"]["parameters"]]
    nested = paths["/api/v1/portfolios/{id}/customers"]["get"]
    assert {"expand", "limit", "filter"} <= {p["name"] for p in nested["parameters"]}
    via = [p for p in paths["/api/v1/customers/{id}/tasks"]["get"]["parameters"] if p["name"] == "via"]
    assert via[0]["schema"] == {"enum": ["customer", "reviewer"]}
    assert "/api/v1/users/{id}/customers" in paths and "/api/v1/projects/{id}/tasks" not in paths


async def test_owner_and_group_set_by_a_write_refer_to_existing_entities(client: httpx.AsyncClient, users: Users,
                                                                         admin: dict[str, str]) -> None:
    """`owner` refers to users and `group` to groups (API.md 13): an id set by a write must be an
    entity the writer may read (an admin reads them all), as for any reference; the defaults a
    create gets and an id the entity already holds are not asked again."""
    nowhere = "0123456789abcdef01234567"
    staff = await users.group("staff")
    member_id, member = await users.user("member", groups=[staff])
    r = await client.post(f"{API}/portfolios", json={"title": "p"}, headers=member)
    assert r.status_code == 201, r.text
    acl = f"{API}/portfolios/{r.json()['_id']}/acl"
    for body, field in (({"owner": nowhere}, "owner"), ({"group": nowhere}, "group")):
        refused = await client.put(acl, json=body, headers=admin)
        assert refused.status_code == 400 and set(refused.json()["fields"]) == {field}, refused.text
    r = await client.post(f"{API}/portfolios", json={"title": "q", "group": nowhere}, headers=admin)
    assert r.status_code == 400 and set(r.json()["fields"]) == {"group"}, r.text
    assert (await client.put(acl, json={"group": staff, "owner": member_id}, headers=admin)).status_code == 200
    r = await client.post(f"{API}/portfolios", json={"title": "r", "group": staff}, headers=member)
    assert r.status_code == 201, r.text
    # the owner is deleted: the entity still holds the id, and a write that keeps it is no new reference
    assert (await client.delete(f"{API}/users/{member_id}", headers=admin)).status_code == 200
    assert (await client.put(acl, json={"owner": member_id, "access": []}, headers=admin)).status_code == 200
