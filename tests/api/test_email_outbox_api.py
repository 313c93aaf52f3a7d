"""Email templates of activities, server action edits, the outbox and the link tracker."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from nurture.channels.email.models import LinkClick, MailMessage, TrackedLink
from nurture.clock import utcnow
from nurture.worker.loop import tick
from tests.api.conftest import Api

V1 = "/api/v1"
BODY = '<p>Hello {{ record.name }}</p><a href="https://example.com/offer">Offer</a>'


def _email_campaign(client: TestClient) -> tuple[int, int]:
    for body in ({"name": "Ann", "email": "ann@example.com"}, {"name": "Bob", "email": "bob@example.com"}):
        assert client.post(f"{V1}/records/contact", json=body).status_code == 201
    cid = client.post(
        f"{V1}/campaigns",
        json={"name": "Mailing", "model": "contact", "domain": "[('email', '!=', False)]"},
    ).json()["id"]
    r = client.post(
        f"{V1}/campaigns/{cid}/activities", json={"name": "Welcome", "activity_type": "email"}
    )
    assert r.status_code == 201, r.text
    return cid, r.json()["id"]


def test_email_template_crud_preview_and_roles(api: Api) -> None:
    client = api.as_role("marketer")
    cid, aid = _email_campaign(client)
    url = f"{V1}/campaigns/{cid}/activities/{aid}/email-template"
    assert client.get(url).status_code == 404

    # a template error: 422 in the standard body, the message gives line and column
    r = client.put(url, json={"subject": "Hi", "body_html": "<p>\n{{ record.nope }}</p>"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_template"
    assert "line 2" in error["message"] and "column" in error["message"]
    assert client.get(url).status_code == 404  # nothing saved

    r = client.put(url, json={"subject": "Hi {{ record.name }}", "body_html": BODY})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["activity_id"] == aid and created["model"] == "contact"
    assert created["name"] == "Welcome"
    r = client.put(url, json={"subject": "Hello again", "body_html": BODY, "preview": "Psst"})
    assert r.status_code == 200 and r.json()["id"] == created["id"]
    assert client.get(url).json()["subject"] == "Hello again"
    r = client.put(url, json={"subject": "x", "body_html": "", "from_addr": "not an address"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "from_addr"

    ann = client.get(f"{V1}/records/contact").json()["items"][0]["id"]
    viewer = api.as_role("viewer")
    r = viewer.get(f"{url}/preview", params={"record_id": ann})
    assert r.status_code == 200, r.text
    assert "Hello Ann" in r.json()["html"] and r.json()["preview"] == "Psst"
    assert viewer.get(f"{url}/preview", params={"record_id": 999999}).status_code == 404
    assert viewer.put(url, json={"subject": "x"}).status_code == 403
    assert viewer.delete(url).status_code == 403

    # only email activities have templates; the activity must belong to the campaign
    client = api.as_role("marketer")
    other = client.post(
        f"{V1}/campaigns/{cid}/activities", json={"name": "Act", "activity_type": "action"}
    ).json()["id"]
    r = client.put(
        f"{V1}/campaigns/{cid}/activities/{other}/email-template", json={"subject": "x"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "activity_id"
    assert client.get(f"{V1}/campaigns/{cid + 1}/activities/{aid}/email-template").status_code == 404

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert api.as_role("admin").get(url).status_code == 404


def test_server_action_update_and_delete(api: Api) -> None:
    client = api.as_role("marketer")
    r = client.post(f"{V1}/server-actions", json={"name": "Tag", "model": "contact", "add_tags": ["Hot"]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    r = client.patch(f"{V1}/server-actions/{sid}", json={"name": "Tag hot", "remove_tags": ["Cold"]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Tag hot" and r.json()["payload"]["remove_tags"] == ["Cold"]
    r = client.patch(f"{V1}/server-actions/{sid}", json={"payload": {"set": {"nope": 1}}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "set.nope"
    r = client.patch(f"{V1}/server-actions/{sid}", json={"payload": {"bogus": 1}})
    assert r.status_code == 422
    assert client.get(f"{V1}/server-actions/{sid}").json()["name"] == "Tag hot"
    listed = client.get(f"{V1}/server-actions", params={"model": "contact"}).json()["items"]
    assert [a["id"] for a in listed] == [sid]

    viewer = api.as_role("viewer")
    assert viewer.patch(f"{V1}/server-actions/{sid}", json={"name": "x"}).status_code == 403
    assert viewer.delete(f"{V1}/server-actions/{sid}").status_code == 403

    client = api.as_role("marketer")
    cid = client.post(f"{V1}/campaigns", json={"name": "C", "model": "contact"}).json()["id"]
    r = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "Use it", "activity_type": "action", "server_action_id": sid},
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    r = client.delete(f"{V1}/server-actions/{sid}")
    assert r.status_code == 409
    assert "Use it" in r.json()["error"]["message"]
    r = client.patch(f"{V1}/server-actions/{sid}", json={"model": "lead"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "model"

    assert client.delete(f"{V1}/campaigns/{cid}/activities/{aid}").status_code == 204
    assert client.delete(f"{V1}/server-actions/{sid}").status_code == 204
    assert client.get(f"{V1}/server-actions/{sid}").status_code == 404
    assert client.delete(f"{V1}/server-actions/{sid}").status_code == 404
    assert client.patch(f"{V1}/server-actions/{sid}", json={"name": "x"}).status_code == 404


def test_outbox_and_link_tracker(api: Api) -> None:
    client = api.as_role("marketer")
    cid, aid = _email_campaign(client)
    r = client.put(
        f"{V1}/campaigns/{cid}/activities/{aid}/email-template",
        json={"subject": "Hi {{ record.name }}", "body_html": BODY},
    )
    assert r.status_code == 200, r.text
    assert client.post(f"{V1}/campaigns/{cid}/start").status_code == 200
    tick(api.db, now=utcnow() + timedelta(minutes=1))

    viewer = api.as_role("viewer")
    r = viewer.get(f"{V1}/messages", params={"campaign_id": cid})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 2
    assert {m["email"] for m in items} == {"ann@example.com", "bob@example.com"}
    assert all(m["activity_id"] == aid for m in items)
    state = items[0]["state"]
    assert len(viewer.get(f"{V1}/messages", params={"state": state}).json()["items"]) >= 1
    assert viewer.get(f"{V1}/messages", params={"state": "bogus"}).status_code == 422
    assert viewer.get(f"{V1}/messages", params={"activity_id": aid + 100}).json()["items"] == []
    page = viewer.get(f"{V1}/messages", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = viewer.get(f"{V1}/messages", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] != page["items"][0]["id"]

    mid = items[0]["id"]
    detail = viewer.get(f"{V1}/messages/{mid}").json()
    assert detail["subject"].startswith("Hi ") and detail["source_size"] > 0
    r = viewer.get(f"{V1}/messages/{mid}/source")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("message/rfc822")
    assert b"Subject:" in r.content and len(r.content) == detail["source_size"]
    assert viewer.get(f"{V1}/messages/999999").status_code == 404
    assert viewer.get(f"{V1}/messages/999999/source").status_code == 404

    # clicks: two human clicks by one recipient, one machine hit
    now = utcnow()
    with api.db.transaction() as session:
        link = session.scalars(
            select(TrackedLink).where(TrackedLink.campaign_id == cid, TrackedLink.url.contains("offer"))
        ).first()
        assert link is not None
        trace_id = session.scalar(select(MailMessage.trace_id).where(MailMessage.id == mid))
        assert trace_id is not None
        for machine in (False, False, True):
            session.add(LinkClick(link_id=link.id, trace_id=trace_id, at=now, machine=machine))
        link_id = link.id
    r = viewer.get(f"{V1}/link-tracker", params={"campaign_id": cid})
    assert r.status_code == 200, r.text
    stats = {s["id"]: s for s in r.json()["items"]}
    assert stats[link_id]["clicks"] == 2
    assert stats[link_id]["unique_clicks"] == 1
    assert stats[link_id]["machine_clicks"] == 1
    assert stats[link_id]["last_click_at"] is not None
    assert "example.com/offer" in stats[link_id]["url"]
    assert viewer.get(f"{V1}/link-tracker", params={"campaign_id": cid + 1}).json()["items"] == []

    # no credentials: 401
    api.client.headers.pop("Authorization")
    assert api.client.get(f"{V1}/messages").status_code == 401
    assert api.client.get(f"{V1}/link-tracker").status_code == 401
