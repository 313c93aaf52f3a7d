"""Regression tests of the hardening audit (issue 12) through the REST API."""

from __future__ import annotations

from nurture import templating as t
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


def test_undecodable_json_is_a_documented_400_after_authentication(api: Api) -> None:
    client = api.client
    raw = {"Content-Type": "application/json"}
    anonymous = client.post("/api/v1/tags", content=b"{not json", headers=raw)
    assert anonymous.status_code == 401
    anonymous = client.post("/api/v1/tags", json={"name": 5}, headers={})
    assert anonymous.status_code == 401
    bad = client.post("/api/v1/tags", content=b"{not json", headers={**raw, **api.headers("admin")})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_request"
    assert bad.json()["error"]["message"].startswith("the body is not valid JSON")
    spec = client.get("/openapi.json").json()
    assert "400" in spec["paths"]["/api/v1/tags"]["post"]["responses"]
    assert "400" not in spec["paths"]["/api/v1/tags"]["get"]["responses"]


def test_non_finite_numbers_and_nul_characters_are_refused(api: Api) -> None:
    admin = api.as_role("admin")
    raw = {"Content-Type": "application/json"}
    for body, field in (
        (b'{"name": "Ann", "values": {"x": 1e999}}', "body"),
        (b'{"name": "Ann", "score": NaN}', "body"),
        (b'{"values": {"name": "A\\u0000nn"}}', "values.name"),
    ):
        response = admin.post("/api/v1/records/contact", content=body, headers=raw)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    tag = admin.post("/api/v1/tags", json={"name": "a\x00b"})
    assert tag.status_code == 422 and tag.json()["error"]["field"] == "name"


def test_405_lists_every_allowed_method(api: Api) -> None:
    admin = api.as_role("admin")
    response = admin.put("/api/v1/server-actions/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    response = admin.delete("/api/v1/blacklist/email/remove")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_strict_types_no_number_for_a_boolean_nor_a_boolean_for_a_number(api: Api) -> None:
    admin = api.as_role("admin")
    user_id = api.user_ids["viewer"]
    response = admin.patch(f"/api/v1/users/{user_id}", json={"active": 0})
    assert response.status_code == 422 and response.json()["error"]["field"] == "active"
    assert admin.get(f"/api/v1/users/{user_id}").json()["active"] is True
    response = admin.post("/api/v1/tags", json={"name": "Hot", "color": True})
    assert response.status_code == 422 and response.json()["error"]["field"] == "color"
    contact = admin.post("/api/v1/records/contact", json={"name": "Ann"}).json()
    response = admin.patch(f"/api/v1/records/contact/{contact['id']}", json={"active": 0})
    assert response.status_code == 422 and response.json()["error"]["field"] == "active"


def test_out_of_range_ids_and_integers_are_422_naming_the_field(api: Api) -> None:
    admin = api.as_role("admin")
    huge = 10**30
    for body, field in (
        ({"name": "Ann", "salesperson": huge}, "salesperson"),
        ({"name": "Ann", "tags": [huge]}, "tags"),
        ({"name": "Ann", "salesperson_id": 2**40}, "salesperson"),
    ):
        response = admin.post("/api/v1/records/contact", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    lead = admin.post("/api/v1/records/lead", json={"name": "L", "priority": huge})
    assert lead.status_code == 422 and lead.json()["error"]["field"] == "priority"
    contact = admin.post("/api/v1/records/contact", json={"name": "Ann"}).json()
    response = admin.patch(f"/api/v1/records/contact/{contact['id']}", json={"salesperson": huge})
    assert response.status_code == 422 and response.json()["error"]["field"] == "salesperson"
    for action_type, payload, field in (
        ("update_record", {"set": {"salesperson": huge}}, "set.salesperson"),
        ("multi", {"actions": [huge]}, "actions"),
        (
            "crm_activity",
            {"summary": "Call", "user_field": "salesperson", "fallback_user_id": huge},
            "fallback_user_id",
        ),
    ):
        response = admin.post(
            "/api/v1/server-actions",
            json={"name": "A", "model": "contact", "action_type": action_type, "payload": payload},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    assert admin.get("/api/v1/server-actions").json()["items"] == []


def test_deep_and_wide_filters_are_a_clear_422(api: Api) -> None:
    admin = api.as_role("admin")
    leaf = '["name", "=", "x"]'
    cases = {
        "brackets": "[" * 3000 + "]" * 3000,
        "negations": "[" + '"!",' * 3001 + leaf + "]",
        "wide or": "[" + '"|",' * 599 + ",".join([leaf] * 600) + "]",
        "deep value": '[["name","in",' + "[" * 3000 + "]" * 3000 + "]]",
    }
    for name, text in cases.items():
        for path in ("/api/v1/records/contact", "/api/v1/records/contact/count"):
            response = admin.get(path, params={"filter": text})
            if name == "negations":  # '!' pairs cancel out: a valid, shallow filter
                assert response.status_code == 200, (name, response.text)
                continue
            assert response.status_code == 422, (name, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_filter", name
            assert "at most 500" in error["message"] or "more than 50 levels" in error["message"]
    # the same through a JSON body: 5,000 negations, 1,000 leaves
    body = {"domain": ["!"] * 5000 + [["name", "=", "x"]]}
    assert admin.post("/api/v1/filters/contact", json=body).status_code == 200
    body = {"domain": ["|"] * 999 + [["name", "=", "x"]] * 1000}
    response = admin.post("/api/v1/filters/contact", json=body)
    assert response.status_code == 422 and "at most 500" in response.json()["error"]["message"]
    # 500 conditions in one OR are fine; alternating AND/OR groups 60 deep are not
    ok = "[" + '"|", ' * 499 + ", ".join([leaf] * 500) + "]"
    assert admin.get("/api/v1/records/contact/count", params={"filter": ok}).status_code == 200
    deep = leaf
    for level in range(60):
        deep = f'"{"&" if level % 2 else "|"}", {leaf}, {deep}'
    response = admin.get("/api/v1/records/contact/count", params={"filter": f"[{deep}]"})
    assert response.status_code == 422
    assert "more than 50 levels" in response.json()["error"]["message"]
    tree: dict[str, object] = {"type": "rule", "field": "name", "operator": "=", "value": "x"}
    for _ in range(200):
        tree = {"type": "group", "match": "all", "children": [tree]}
    response = admin.post("/api/v1/filters/contact", json={"tree": tree})
    assert response.status_code == 422, response.text
    assert "more than 50 levels" in response.json()["error"]["message"]


def test_csv_export_neutralises_formulas_unless_raw(api: Api) -> None:
    admin = api.as_role("admin")
    name = '=HYPERLINK("http://evil.example")'
    assert admin.post("/api/v1/records/contact", json={"name": name}).status_code == 201
    safe = admin.get("/api/v1/records/contact/export").text
    assert "\"'=HYPERLINK(\"\"http://evil.example\"\")\"" in safe
    raw = admin.get("/api/v1/records/contact/export", params={"raw": "true"}).text
    assert '"=HYPERLINK(""http://evil.example"")"' in raw and "'=" not in raw


def test_garbage_body_never_reaches_an_endpoint_whose_fields_are_optional(api: Api) -> None:
    admin = api.as_role("admin")
    raw = {"Content-Type": "application/json"}
    before = len(admin.get("/api/v1/me/tokens").json())
    response = admin.post("/api/v1/me/tokens", content=b"\x07\xff", headers=raw)
    assert response.status_code == 400 and response.json()["error"]["field"] == "body"
    assert len(admin.get("/api/v1/me/tokens").json()) == before
    assert admin.post("/api/v1/filters/lead", content=b"\x07\xff", headers=raw).status_code == 400
