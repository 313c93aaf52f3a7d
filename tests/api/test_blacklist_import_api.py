"""Blacklist import and history through the API."""

from __future__ import annotations

from tests.api.conftest import Api


def test_api_import_and_history(api: Api) -> None:
    client = api.as_role("marketer")
    response = client.post(
        "/api/v1/blacklist/phone/import",
        files={"file": ("numbers.csv", b"number\n+32470123456\nabc\n", "text/csv")},
        data={"reason": "complaint"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["added"], body["already"]) == (1, 0)
    assert [e["line"] for e in body["errors"]] == [3]
    history = client.get("/api/v1/blacklist/phone/history", params={"value": "+32470123456"})
    assert history.status_code == 200
    assert [(h["action"], h["source"], h["reason"]) for h in history.json()] == [
        ("add", "import", "complaint")
    ]
    viewer = api.as_role("viewer")
    refused = viewer.post(
        "/api/v1/blacklist/email/import", files={"file": ("a.txt", b"a@example.com\n", "text/plain")}
    )
    assert refused.status_code == 403
