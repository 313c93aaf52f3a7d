"""Regression tests of the hardening audit (issue 12) through the REST API."""

from __future__ import annotations

from nurture.channels.email import templates as t
from tests.api.conftest import Api
from tests.channels.email.test_render_budget import NESTED3, SLOW

SMS_ITEMS = "[" + ",".join(["1"] * 700) + "]"
SMS_NESTED = (
    f"{{% for a in {SMS_ITEMS} %}}{{% for b in {SMS_ITEMS} %}}{{% for c in {SMS_ITEMS} %}}x"
    "{% endfor %}{% endfor %}{% endfor %}"
)


def test_viewer_preview_runs_under_the_preview_budget(api: Api) -> None:
    viewer = api.as_role("viewer")
    response = viewer.post(
        "/api/v1/templates/email/preview", json={"model": "contact", "subject": "Hi", "html": SLOW}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == (
        f"html: rendering took longer than {t.PREVIEW_BUDGET.seconds:g} s (the render budget)"
    )
    response = viewer.post(
        "/api/v1/templates/email/preview", json={"model": "contact", "subject": "Hi", "html": NESTED3}
    )
    assert response.status_code == 422 and "render budget" in response.json()["error"]["message"]
    response = viewer.post(
        "/api/v1/templates/sms/preview", json={"model": "contact", "body": SMS_NESTED}
    )
    assert response.status_code == 422 and "render budget" in response.json()["error"]["message"]


def test_webhook_secret_is_generated_shown_once_masked_and_rotatable(api: Api) -> None:
    admin = api.as_role("admin")
    created = admin.post(
        "/api/v1/server-actions",
        json={
            "name": "Hook",
            "model": "contact",
            "action_type": "webhook",
            "payload": {"url": "https://hooks.example.com/in"},
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert isinstance(secret, str) and len(secret) >= 40
    assert "secret" not in body["payload"] and body["secret_hint"] == f"…{secret[-4:]}"
    action_id = body["id"]
    for role in ("viewer", "admin"):
        client = api.as_role(role)
        one = client.get(f"/api/v1/server-actions/{action_id}").json()
        assert one["secret"] is None and "secret" not in one["payload"]
        assert one["secret_hint"] == f"…{secret[-4:]}"
        listed = client.get("/api/v1/server-actions").json()["items"]
        assert secret not in str(listed)
    admin = api.as_role("admin")
    # an edit that does not give a secret keeps it
    edited = admin.patch(
        f"/api/v1/server-actions/{action_id}",
        json={"payload": {"url": "https://hooks.example.com/v2"}},
    )
    assert edited.status_code == 200 and edited.json()["secret"] is None
    assert edited.json()["secret_hint"] == f"…{secret[-4:]}"
    # rotation: a writer gets the new secret once; a viewer may not rotate
    assert (
        api.as_role("viewer").post(f"/api/v1/server-actions/{action_id}/rotate-secret").status_code
        == 403
    )
    rotated = api.as_role("admin").post(f"/api/v1/server-actions/{action_id}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new and new != secret and rotated.json()["secret_hint"] == f"…{new[-4:]}"
    tagger = admin.post(
        "/api/v1/server-actions",
        json={"name": "Tag", "model": "contact", "payload": {"add_tags": ["x"]}},
    ).json()
    assert tagger["secret"] is None and tagger["secret_hint"] is None
    refused = admin.post(f"/api/v1/server-actions/{tagger['id']}/rotate-secret")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "action_type"
