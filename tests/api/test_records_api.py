"""Records through the API: CRUD, filters, pagination, counts, fields, CSV, error bodies."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from tests.api.conftest import Api

BASE = "/api/v1/records"


def _contacts(client: TestClient, n: int, **extra: object) -> list[int]:
    ids = []
    for i in range(n):
        body = {"name": f"C{i:02d}", "email": f"c{i:02d}@example.com", **extra}
        r = client.post(f"{BASE}/contact", json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def test_crud_round_trip(admin: TestClient) -> None:
    r = admin.post(
        f"{BASE}/contact",
        json={"name": "Ann", "email": "ANN@Example.com", "tags": ["VIP", "Hot"], "country_code": "be"},
    )
    assert r.status_code == 201, r.text
    ann = r.json()
    assert ann["email"] == "ann@example.com"
    assert ann["country_code"] == "BE"
    assert len(ann["tags"]) == 2
    assert ann["created_at"].endswith("Z")

    r = admin.get(f"{BASE}/contact/{ann['id']}")
    assert r.status_code == 200 and r.json()["name"] == "Ann"

    r = admin.patch(f"{BASE}/contact/{ann['id']}", json={"city": "Liège", "tags": []})
    assert r.status_code == 200, r.text
    assert r.json()["city"] == "Liège" and r.json()["tags"] == []

    r = admin.post(f"{BASE}/contact/{ann['id']}/archive")
    assert r.status_code == 200 and r.json()["active"] is False
    assert admin.get(f"{BASE}/contact").json()["items"] == []
    listed = admin.get(f"{BASE}/contact", params={"include_archived": "true"}).json()["items"]
    assert [c["id"] for c in listed] == [ann["id"]]
    r = admin.post(f"{BASE}/contact/{ann['id']}/unarchive")
    assert r.json()["active"] is True

    r = admin.delete(f"{BASE}/contact/{ann['id']}")
    assert r.status_code == 204
    r = admin.get(f"{BASE}/contact/{ann['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_other_models_lead_and_events(admin: TestClient) -> None:
    contact = admin.post(f"{BASE}/contact", json={"name": "Ann"}).json()
    r = admin.post(
        f"{BASE}/lead",
        json={"name": "Deal", "contact": contact["id"], "priority": 2, "type": "opportunity"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["contact"] == contact["id"]
    r = admin.post(f"{BASE}/lead", json={"name": "Bad", "priority": 9})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "priority"
    event = admin.post(f"{BASE}/event", json={"name": "Expo", "date_begin": "2026-05-01T09:00:00"})
    assert event.status_code == 201, event.text
    reg = admin.post(
        f"{BASE}/event_registration",
        json={"name": "Bob", "event": event.json()["id"], "email": "bob@example.com"},
    )
    assert reg.status_code == 201, reg.text


def test_filter_json_and_odoo_text(admin: TestClient) -> None:
    _contacts(admin, 3)
    admin.post(f"{BASE}/contact", json={"name": "No mail", "country_code": "FR"})
    odoo = admin.get(f"{BASE}/contact", params={"filter": "[('email', '!=', False)]"})
    assert odoo.status_code == 200
    assert len(odoo.json()["items"]) == 3
    js = admin.get(f"{BASE}/contact", params={"filter": '[["country_code", "=", "FR"]]'})
    assert [c["name"] for c in js.json()["items"]] == ["No mail"]
    count = admin.get(f"{BASE}/contact/count", params={"filter": '[["email", "ilike", "c0"]]'})
    assert count.json() == {"model": "contact", "count": 3}


def test_filter_errors_name_the_path(admin: TestClient) -> None:
    r = admin.get(f"{BASE}/contact", params={"filter": '[["colour", "=", "red"]]'})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_filter"
    assert error["field"] == "colour"
    assert "colour" in error["message"]
    r = admin.get(f"{BASE}/contact/count", params={"filter": '[["tags.nme", "=", "x"]]'})
    assert r.status_code == 422 and "tags.nme" in r.json()["error"]["message"]
    r = admin.get(f"{BASE}/contact", params={"filter": "[("})
    assert r.status_code == 422


def test_pagination_cursor_and_offset(admin: TestClient) -> None:
    ids = _contacts(admin, 7)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = admin.get(f"{BASE}/contact", params=params).json()
        seen.extend(c["id"] for c in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    page = admin.get(f"{BASE}/contact", params={"limit": 2, "offset": 5, "with_total": "true"})
    assert [c["id"] for c in page.json()["items"]] == ids[5:]
    assert page.json()["total"] == 7
    bad = admin.get(f"{BASE}/contact", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    too_big = admin.get(f"{BASE}/contact", params={"limit": 100000})
    assert too_big.status_code == 422 and too_big.json()["error"]["field"] == "limit"


def test_error_bodies(admin: TestClient) -> None:
    r = admin.post(f"{BASE}/contact", json={"email": "x@example.com"})
    assert r.status_code == 422
    assert r.json() == {
        "error": {"code": "invalid", "message": "name: a value is required", "field": "name"}
    }
    r = admin.post(f"{BASE}/contact", json={"name": "X", "email": "not an email"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "email"
    r = admin.post(f"{BASE}/contact", json={"name": "X", "nope": 1})
    assert r.status_code == 422 and r.json()["error"]["field"] == "nope"
    r = admin.get(f"{BASE}/nosuchmodel")
    assert r.status_code == 404 and r.json()["error"]["field"] == "model"
    r = admin.get(f"{BASE}/user")
    assert r.status_code == 404
    r = admin.get(f"{BASE}/contact/notanumber")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"
    assert r.json()["error"]["field"] == "record_id"
    r = admin.post(f"{BASE}/tag", json={"name": "VIP"})
    assert r.status_code == 201
    r = admin.post(f"{BASE}/tag", json={"name": "VIP"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = admin.post(f"{BASE}/contact", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"


def test_fields_for_the_filter_editor(admin: TestClient) -> None:
    r = admin.get(f"{BASE}/contact/fields")
    assert r.status_code == 200
    fields = {f["name"]: f for f in r.json()}
    assert fields["tags"]["relation"] == "tag"
    assert "ilike" in fields["email"]["operators"]


def test_csv_import_report_and_export(admin: TestClient) -> None:
    data = "name,email,tags\nAnn,ann@example.com,VIP\nBad,not-an-email,\nBob,bob@example.com,\n"
    r = admin.post(
        f"{BASE}/contact/import", files={"file": ("contacts.csv", data.encode(), "text/csv")}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 2 and report["error_count"] == 1
    assert report["errors"][0]["line"] == 3 and report["errors"][0]["field"] == "email"

    r = admin.get(f"{BASE}/contact/export", params={"filter": '[["tags.name", "=", "VIP"]]'})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["name"] for row in rows] == ["Ann"] and rows[0]["tags"] == "VIP"

    r = admin.get(f"{BASE}/contact/export", params={"filter": '[["nope", "=", 1]]'})
    assert r.status_code == 422
    r = admin.post(f"{BASE}/contact/import", files={"file": ("x.csv", b"\xff\xfe\x00bad")})
    assert r.status_code == 422 and r.json()["error"]["field"] == "file"
    r = admin.post(
        f"{BASE}/contact/import",
        files={"file": ("x.csv", b"full_name\nZed\n")},
        data={"mapping": '{"full_name": "name"}'},
    )
    assert r.status_code == 200 and r.json()["created"] == 1
    r = admin.post(f"{BASE}/tag/import", files={"file": ("x.csv", b"name\nx\n")})
    assert r.status_code == 404


def test_large_export_streams(api: Api) -> None:
    client = api.as_role("admin")
    lines = ["name,email"] + [f"P{i},p{i}@example.com" for i in range(3000)]
    r = client.post(
        f"{BASE}/contact/import", files={"file": ("big.csv", "\n".join(lines).encode())}
    )
    assert r.json()["created"] == 3000
    with client.stream("GET", f"{BASE}/contact/export") as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert body.count("\n") == 3001


def test_tags_and_lists(admin: TestClient) -> None:
    tag = admin.post("/api/v1/tags", json={"name": "Hot"})
    assert tag.status_code == 201
    assert admin.get("/api/v1/tags", params={"q": "ho"}).json()["items"][0]["name"] == "Hot"
    r = admin.patch(f"/api/v1/tags/{tag.json()['id']}", json={"color": 3})
    assert r.json()["color"] == 3
    lst = admin.post("/api/v1/lists", json={"name": "Newsletter"}).json()
    mc = admin.post(f"{BASE}/mailing_contact", json={"name": "Ann", "email": "a@example.com"}).json()
    r = admin.post(f"/api/v1/lists/{lst['id']}/subscriptions", json={"contact_id": mc["id"]})
    assert r.status_code == 201 and r.json()["opted_out"] is False
    r = admin.post(f"/api/v1/lists/{lst['id']}/subscriptions/{mc['id']}/opt-out")
    assert r.json()["opted_out"] is True and r.json()["unsubscribed_at"] is not None
    listed = admin.get(f"/api/v1/lists/{lst['id']}")
    assert listed.json()["opted_out"] == 1 and listed.json()["subscribers"] == 0
    r = admin.post(f"/api/v1/lists/{lst['id']}/subscriptions/{mc['id']}/resubscribe")
    assert r.json()["opted_out"] is False
    subs = admin.get(f"/api/v1/lists/{lst['id']}/subscriptions").json()["items"]
    assert [s["contact_id"] for s in subs] == [mc["id"]]
    r = admin.post(f"/api/v1/lists/{lst['id']}/subscriptions", json={"contact_id": 999})
    assert r.status_code == 404
    in_list = admin.get(
        f"{BASE}/mailing_contact/count",
        params={"filter": '[["subscriptions.list.name", "=", "Newsletter"]]'},
    )
    assert in_list.json()["count"] == 1
    assert admin.delete(f"/api/v1/tags/{tag.json()['id']}").status_code == 204


def test_filter_check_and_tree_conversion(admin: TestClient) -> None:
    _contacts(admin, 2)
    r = admin.post("/api/v1/filters/contact", json={"domain": "[('email', 'ilike', 'c01')]"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["count"] == 1 and out["tree"]["type"] == "group"
    back = admin.post("/api/v1/filters/contact", json={"tree": out["tree"]})
    assert back.json()["domain"] == out["domain"] and back.json()["count"] == 1
    r = admin.post("/api/v1/filters/contact", json={"tree": {"type": "rule", "field": "x", "operator": "="}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_filter"
    r = admin.post("/api/v1/filters/lead", json={"domain": [["stage", "=", "Nope"]]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "stage"
