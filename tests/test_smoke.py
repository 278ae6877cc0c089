async def test_health(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


async def test_create_and_get(client, admin):
    r = await client.post("/api/v1/things", json={"name": "a", "count": 2}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/v1/things/{created['_id']}"
    r = await client.get(f"/api/v1/things/{created['_id']}", headers=admin)
    assert r.status_code == 200
    assert r.json() == created
