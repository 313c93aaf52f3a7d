"""SMS templates of activities and the SMS outbox through the API (the default ``outbox``
provider: messages stay in the database)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from nurture.channels.sms import context as sms_service
from nurture.clock import utcnow
from nurture.worker.loop import tick
from tests.api.conftest import Api

V1 = "/api/v1"


def _sms_campaign(client: TestClient) -> tuple[int, int, int]:
    for body in (
        {"name": "Ann", "mobile": "0612345678", "country_code": "FR"},
        {"name": "Bob", "mobile": "+32470123456"},
    ):
        assert client.post(f"{V1}/records/contact", json=body).status_code == 201
    cid = client.post(f"{V1}/campaigns", json={"name": "Texts", "model": "contact"}).json()["id"]
    sms = client.post(f"{V1}/campaigns/{cid}/activities", json={"name": "Promo", "activity_type": "sms"})
    mail = client.post(f"{V1}/campaigns/{cid}/activities", json={"name": "Mail", "activity_type": "email"})
    assert sms.status_code == 201 and mail.status_code == 201
    return cid, sms.json()["id"], mail.json()["id"]


def test_sms_template_crud_validation_and_roles(api: Api) -> None:
    client = api.as_role("marketer")
    cid, sms, mail = _sms_campaign(client)
    url = f"{V1}/campaigns/{cid}/activities/{sms}/sms-template"
    assert client.get(url).status_code == 404

    r = client.put(url, json={"body": "Hello\n  {% if %}"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_template", "body")
    assert "line 2, column" in error["message"]
    assert client.get(url).status_code == 404  # nothing saved
    assert client.put(url, json={"body": ""}).status_code == 422

    long_text = "{{ record.name }} " + "x" * 200
    r = client.put(url, json={"body": long_text})
    assert r.status_code == 200, r.text
    created = r.json()
    assert (created["name"], created["model"], created["opt_out"]) == ("Promo", "contact", False)
    septets = len(long_text) + 4  # "{" and "}" are GSM-7 extension characters: two each
    assert created["segments"] == {
        "encoding": "gsm7", "length": septets, "segments": 2,
        "remaining": 2 * 153 - septets, "per_segment": 153,
    }
    r = client.put(url, json={"body": "Hi {{ record.name }} — {{ record.mobile }}", "opt_out": True, "name": "P"})
    assert r.status_code == 200 and r.json()["id"] == created["id"]
    assert r.json()["segments"]["encoding"] == "ucs2" and r.json()["name"] == "P"

    ann = client.get(f"{V1}/records/contact").json()["items"][0]["id"]
    viewer = api.as_role("viewer")
    preview = viewer.get(f"{url}/preview", params={"record_id": ann})
    assert preview.status_code == 200, preview.text
    assert preview.json()["body"].startswith("Hi Ann — +33612345678\n")  # opt-out text appended
    assert viewer.put(url, json={"body": "x"}).status_code == 403
    assert viewer.delete(url).status_code == 403

    # an email activity has no SMS template; another campaign's activity is not found
    client = api.as_role("marketer")
    r = client.put(f"{V1}/campaigns/{cid}/activities/{mail}/sms-template", json={"body": "x"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "activity_id"
    other = client.post(f"{V1}/campaigns", json={"name": "Other", "model": "contact"}).json()["id"]
    r = client.put(f"{V1}/campaigns/{other}/activities/{sms}/sms-template", json={"body": "x"})
    assert r.status_code == 404

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404


def test_sms_outbox_and_metrics(api: Api) -> None:
    client = api.as_role("marketer")
    cid, sms, mail = _sms_campaign(client)
    client.delete(f"{V1}/campaigns/{cid}/activities/{mail}")
    r = client.put(
        f"{V1}/campaigns/{cid}/activities/{sms}/sms-template",
        json={"body": "Hi {{ record.name }}: https://shop.example.com/x"},
    )
    assert r.status_code == 200
    assert client.post(f"{V1}/campaigns/{cid}/start").status_code == 200
    sms_service.reset()  # the outbox provider of this process's settings
    tick(api.db, now=utcnow() + timedelta(minutes=1))

    viewer = api.as_role("viewer")
    page = viewer.get(f"{V1}/sms-messages", params={"campaign_id": cid, "limit": 1})
    assert page.status_code == 200, page.text
    first = page.json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = viewer.get(f"{V1}/sms-messages", params={"campaign_id": cid, "cursor": first["next_cursor"]})
    rows = first["items"] + second.json()["items"]
    assert sorted(m["to_number"] for m in rows) == ["+32470123456", "+33612345678"]
    for m in rows:
        assert m["state"] == "sent" and m["provider"] == "outbox" and m["provider_id"].startswith("outbox-")
        assert m["body"].startswith("Hi ") and "/t/s/" in m["body"] and "shop.example.com" not in m["body"]
        assert m["activity_id"] == sms and m["delivered_at"] is None and not m["transactional"]
    one = viewer.get(f"{V1}/sms-messages/{rows[0]['id']}")
    assert one.status_code == 200 and one.json() == rows[0]
    assert viewer.get(f"{V1}/sms-messages/999999").status_code == 404
    assert viewer.get(f"{V1}/sms-messages", params={"state": "lost"}).status_code == 422
    assert viewer.get(f"{V1}/sms-messages", params={"state": "queued"}).json()["items"] == []

    metrics = viewer.get(f"{V1}/campaigns/{cid}/metrics").json()
    assert metrics["sms"] == {"sent": 2, "delivered": 0, "clicked": 0, "bounced": 0}
    (promo,) = metrics["activities"]
    assert (promo["sent"], promo["delivered"]) == (2, 0)
