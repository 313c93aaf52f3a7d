"""Campaigns through the API: build a workflow, start it, trace it; test mode; blacklists."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from nurture.clock import utcnow
from nurture.worker.loop import tick
from tests.api.conftest import Api

V1 = "/api/v1"


def _setup_contacts(client: TestClient) -> list[int]:
    ids = []
    for body in (
        {"name": "Ann", "email": "ann@example.com"},
        {"name": "Bob", "email": "bob@example.com"},
        {"name": "No mail"},
    ):
        ids.append(client.post(f"{V1}/records/contact", json=body).json()["id"])
    return ids


def test_campaign_created_started_and_traced(api: Api) -> None:
    client = api.as_role("marketer")
    _setup_contacts(client)
    action = client.post(
        f"{V1}/server-actions", json={"name": "Tag hot", "model": "contact", "add_tags": ["Hot"]}
    )
    assert action.status_code == 201, action.text
    assert action.json()["payload"]["add_tags"] == ["Hot"]

    r = client.post(
        f"{V1}/campaigns",
        json={"name": "Welcome", "model": "contact", "domain": "[('email', '!=', False)]"},
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    cid = campaign["id"]
    assert campaign["state"] == "draft" and campaign["unicity_field"] == "email"
    assert campaign["domain"] != []
    assert client.get(f"{V1}/campaigns/{cid}/count").json()["count"] == 2

    r = client.post(f"{V1}/campaigns/{cid}/start")
    assert r.status_code == 422 and r.json()["error"]["field"] == "activities"

    root = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={
            "name": "Tag them",
            "activity_type": "action",
            "server_action_id": action.json()["id"],
        },
    )
    assert root.status_code == 201, root.text
    root_id = root.json()["id"]
    # tree validation errors name the field
    r = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "x", "activity_type": "action", "trigger_type": "mail_open", "parent_id": root_id},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "parent_id"
    r = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "x", "activity_type": "action", "trigger_type": "activity"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "parent_id"
    r = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "x", "activity_type": "action", "interval_unit": "fortnights"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "interval_unit"
    r = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "x", "activity_type": "action", "domain": [["nope", "=", 1]]},
    )
    error = r.json()["error"]
    assert r.status_code == 422 and (error["code"], error["field"]) == ("invalid_filter", "nope")
    assert error["message"].startswith("domain: nope: unknown field 'nope' on contact")
    bad_campaign = client.post(
        f"{V1}/campaigns",
        json={"name": "Bad filter", "model": "contact", "domain": [["tags.nme", "=", "x"]]},
    )
    assert bad_campaign.status_code == 422, bad_campaign.text
    assert bad_campaign.json()["error"]["code"] == "invalid_filter"
    assert bad_campaign.json()["error"]["field"] == "tags.nme"
    child = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={
            "name": "Follow-up",
            "activity_type": "action",
            "trigger_type": "activity",
            "parent_id": root_id,
            "interval_number": 1,
            "interval_unit": "days",
            "server_action_id": action.json()["id"],
            "domain": [["name", "=", "Ann"]],
        },
    )
    assert child.status_code == 201, child.text
    child_id = child.json()["id"]
    applied = client.get(f"{V1}/campaigns/{cid}/activities/{child_id}/applied-filter").json()
    assert applied["count"] == 1

    r = client.post(f"{V1}/campaigns/{cid}/start")
    assert r.status_code == 200 and r.json()["state"] == "running"
    assert len(r.json()["activities"]) == 2
    assert client.post(f"{V1}/campaigns/{cid}/start").status_code == 409

    # enrolled in the start request itself, before any worker pass
    parts = client.get(f"{V1}/participants", params={"campaign_id": cid}).json()["items"]
    assert len(parts) == 2
    result = tick(api.db, now=utcnow() + timedelta(minutes=1))
    assert result.enrolled == 0

    parts = client.get(f"{V1}/participants", params={"campaign_id": cid}).json()["items"]
    assert len(parts) == 2 and {p["state"] for p in parts} == {"running"}
    processed = client.get(
        f"{V1}/traces", params={"campaign_id": cid, "state": "processed"}
    ).json()["items"]
    assert {t["activity_id"] for t in processed} == {root_id} and len(processed) == 2
    scheduled = client.get(
        f"{V1}/traces", params={"campaign_id": cid, "state": "scheduled"}
    ).json()["items"]
    assert len(scheduled) == 2 and {t["activity_id"] for t in scheduled} == {child_id}
    trace = client.get(f"{V1}/traces/{processed[0]['id']}").json()
    assert trace["executed_at"] is not None
    hot = client.get(
        f"{V1}/records/contact/count", params={"filter": '[["tags.name", "=", "Hot"]]'}
    )
    assert hot.json()["count"] == 2

    tick(api.db, now=utcnow() + timedelta(days=2))
    child_traces = client.get(
        f"{V1}/traces", params={"activity_id": child_id}
    ).json()["items"]
    assert sorted(t["state"] for t in child_traces) == ["processed", "rejected"]
    metrics = client.get(f"{V1}/campaigns/{cid}/metrics").json()
    assert metrics["participants"]["completed"] == 2
    by_activity = {a["activity_id"]: a["traces"] for a in metrics["activities"]}
    assert by_activity[root_id]["processed"] == 2
    assert by_activity[child_id] == {
        "scheduled": 0, "processed": 1, "rejected": 1, "canceled": 0, "error": 0
    }

    # edit while running → workflow modified → update
    r = client.patch(
        f"{V1}/campaigns/{cid}/activities/{child_id}", json={"interval_number": 3}
    )
    assert r.status_code == 200 and r.json()["pending_redate"] is True
    assert client.get(f"{V1}/campaigns/{cid}").json()["workflow_modified"] is True
    r = client.post(f"{V1}/campaigns/{cid}/update")
    assert r.status_code == 200 and r.json()["workflow_modified"] is False

    r = client.post(f"{V1}/campaigns/{cid}/stop")
    assert r.json()["state"] == "stopped"
    assert client.post(f"{V1}/campaigns/{cid}/stop").status_code == 409
    listed = client.get(f"{V1}/campaigns", params={"state": "stopped"}).json()["items"]
    assert [c["id"] for c in listed] == [cid]

    copy = client.post(f"{V1}/campaigns/{cid}/duplicate")
    assert copy.status_code == 201
    assert copy.json()["state"] == "draft" and len(copy.json()["activities"]) == 2
    copy_id = copy.json()["id"]
    r = client.patch(f"{V1}/campaigns/{copy_id}", json={"name": "Copy", "responsible_id": None})
    assert r.status_code == 200 and r.json()["name"] == "Copy"
    r = client.patch(f"{V1}/campaigns/{copy_id}", json={"domain": [["bad", "=", 1]]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "bad"
    assert r.json()["error"]["code"] == "invalid_filter"
    copy_root = copy.json()["activities"][0]["id"]
    r = client.delete(f"{V1}/campaigns/{copy_id}/activities/{copy_root}")
    assert r.status_code == 204
    assert client.get(f"{V1}/campaigns/{copy_id}/activities").json() == []
    r = client.get(f"{V1}/campaigns/{cid}/activities/{copy_root}")
    assert r.status_code == 404

    assert client.delete(f"{V1}/campaigns/{cid}").status_code == 204
    assert client.get(f"{V1}/campaigns/{cid}").status_code == 404

    log = api.client.get(
        f"{V1}/audit", params={"action": "campaign.*"}, headers=api.headers("admin")
    ).json()["items"]
    actions = {(e["action"], e["object_id"]) for e in log}
    for verb in ("create", "start", "update", "stop", "delete"):
        assert (f"campaign.{verb}", str(cid)) in actions
    assert all(e["actor"] == "marketer@example.com" for e in log)


def test_test_mode(api: Api) -> None:
    client = api.as_role("marketer")
    ann, _bob, _ = _setup_contacts(client)
    action = client.post(
        f"{V1}/server-actions", json={"name": "VIP", "model": "contact", "add_tags": ["VIP"]}
    ).json()
    cid = client.post(f"{V1}/campaigns", json={"name": "T", "model": "contact"}).json()["id"]
    assert client.post(f"{V1}/campaigns/{cid}/tests", json={"res_id": ann}).status_code == 422
    root = client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "Tag", "activity_type": "action", "interval_number": 5, "interval_unit": "days",
              "server_action_id": action["id"]},
    ).json()
    client.post(
        f"{V1}/campaigns/{cid}/activities",
        json={"name": "Again", "activity_type": "action", "trigger_type": "activity",
              "parent_id": root["id"], "server_action_id": action["id"]},
    )
    r = client.post(f"{V1}/campaigns/{cid}/tests", json={"res_id": 999999})
    assert r.status_code == 422 and r.json()["error"]["field"] == "res_id"
    r = client.post(f"{V1}/campaigns/{cid}/tests", json={"res_id": ann})
    assert r.status_code == 201, r.text
    test = r.json()
    assert test["participant"]["is_test"] is True
    [step] = test["traces"]
    assert step["state"] == "scheduled"

    r = client.post(f"{V1}/tests/steps/{step['id']}/run")
    assert r.status_code == 200, r.text
    ran = r.json()
    assert ran["result"]["processed"] == 1
    assert [t["state"] for t in ran["traces"]] == ["processed", "scheduled"]
    assert client.post(f"{V1}/tests/steps/{step['id']}/run").status_code == 409
    r = client.post(f"{V1}/tests/steps/{step['id']}/events", json={"event": "open"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "event"
    r = client.post(f"{V1}/tests/steps/{step['id']}/events", json={"event": "explode"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "event"

    r = client.post(f"{V1}/tests/{test['participant']['id']}/stop")
    assert r.status_code == 200
    assert r.json()["participant"]["state"] == "completed"
    assert [t["state"] for t in r.json()["traces"]] == ["processed", "canceled"]
    assert client.get(f"{V1}/tests/{test['participant']['id']}").status_code == 200
    metrics = client.get(f"{V1}/campaigns/{cid}/metrics").json()
    assert metrics["tests"] == 1 and metrics["participants"]["completed"] == 0
    assert client.post(f"{V1}/tests/steps/999999/run").status_code == 404


def test_blacklists(api: Api) -> None:
    client = api.as_role("marketer")
    r = client.post(f"{V1}/blacklist/email", json={"email": "Spam@Example.com", "reason": "asked"})
    assert r.status_code == 201 and r.json()["email"] == "spam@example.com"
    entry = r.json()
    r = client.post(f"{V1}/blacklist/email", json={"email": "not an email"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "email"
    assert [e["email"] for e in client.get(f"{V1}/blacklist/email").json()["items"]] == [
        "spam@example.com"
    ]
    r = client.post(f"{V1}/blacklist/email/remove", json={"email": "spam@example.com"})
    assert r.json() == {"removed": True}
    assert client.get(f"{V1}/blacklist/email").json()["items"] == []
    lifted = client.get(f"{V1}/blacklist/email", params={"active": "false"}).json()["items"]
    assert [e["id"] for e in lifted] == [entry["id"]]
    client.post(f"{V1}/blacklist/email", json={"email": "spam@example.com"})
    r = client.delete(f"{V1}/blacklist/email/{entry['id']}")
    assert r.status_code == 200 and r.json()["active"] is False

    r = client.post(f"{V1}/blacklist/phone", json={"number": "0470 12 34 56", "country_code": "BE"})
    assert r.status_code == 201 and r.json()["number"] == "+32470123456"
    r = client.post(f"{V1}/blacklist/phone/remove", json={"number": "+32470123456"})
    assert r.json() == {"removed": True}
    r = client.post(f"{V1}/blacklist/phone", json={"number": "abc"})
    assert r.status_code == 422

    log = api.client.get(
        f"{V1}/audit", params={"action": "blacklist.*"}, headers=api.headers("admin")
    ).json()
    assert [e["action"] for e in log["items"]].count("blacklist.add") == 3
    assert [e["action"] for e in log["items"]].count("blacklist.remove") == 3


def test_email_template_check_and_preview(api: Api) -> None:
    client = api.as_role("viewer")
    r = client.post(
        f"{V1}/templates/email/check",
        json={"model": "contact", "subject": "Hi", "html": "<p>{{ record.nope }}</p>"},
    )
    assert r.status_code == 200
    assert r.json()["valid"] is False and r.json()["problems"][0]["field"] == "html"
    ann = api.client.post(
        f"{V1}/records/contact", json={"name": "Ann"}, headers=api.headers("admin")
    ).json()
    r = client.post(
        f"{V1}/templates/email/preview",
        json={
            "model": "contact",
            "subject": "Hello {{ record.name }}",
            "html": "<p>Hi {{ record.name | default('there') }}</p>",
            "record_id": ann["id"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == "Hello Ann" and "Hi Ann" in r.json()["text"]
    r = client.post(
        f"{V1}/templates/email/preview",
        json={"model": "contact", "subject": "", "html": "<p>x</p>"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "subject"


def test_sms_template_check_and_preview(api: Api) -> None:
    client = api.as_role("viewer")
    r = client.post(
        f"{V1}/templates/sms/check", json={"model": "contact", "body": "Hi {{ record.name }}"}
    )
    assert r.status_code == 200
    assert r.json()["valid"] is True
    assert r.json()["segments"]["encoding"] == "gsm7" and r.json()["segments"]["segments"] == 1
    r = client.post(f"{V1}/templates/sms/check", json={"model": "contact", "body": "{{ record.x }}"})
    assert r.json()["valid"] is False and r.json()["problems"][0]["field"] == "body"
    r = client.post(
        f"{V1}/templates/sms/preview",
        json={"model": "contact", "body": "Hi {{ record.name | default('you') }} é€", "opt_out_text": "STOP"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["body"] == "Hi you é€\nSTOP"


def test_unknown_api_paths_use_the_error_shape(api: Api) -> None:
    client = api.as_role("admin")
    r = client.get(f"{V1}/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.put(f"{V1}/campaigns")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert client.get("/nothing-here").json() == {
        "code": "not_found", "message": "Not Found", "field": None
    }


def test_server_actions(api: Api) -> None:
    from nurture.web.api.server_actions import SERVICE_TAKES_PAYLOAD

    client = api.as_role("marketer")
    r = client.post(
        f"{V1}/server-actions",
        json={"name": "Prio", "model": "lead", "payload": {"set": {"priority": 3}}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["payload"]["set"] == {"priority": 3}
    r = client.post(
        f"{V1}/server-actions", json={"name": "Bad", "model": "lead", "values": {"priority": 7}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "set.priority"
    r = client.post(f"{V1}/server-actions", json={"name": "Nothing", "model": "contact"})
    assert r.status_code == 422
    r = client.post(
        f"{V1}/server-actions",
        json={"name": "Hook", "model": "contact", "action_type": "webhook",
              "payload": {"url": "https://example.com/hook"}},
    )
    assert r.status_code == (201 if SERVICE_TAKES_PAYLOAD else 422), r.text
    listed = client.get(f"{V1}/server-actions", params={"model": "lead"}).json()["items"]
    assert [a["name"] for a in listed] == ["Prio"]
    assert client.get(f"{V1}/server-actions/{listed[0]['id']}").json()["model"] == "lead"
    assert client.get(f"{V1}/server-actions/999999").status_code == 404
