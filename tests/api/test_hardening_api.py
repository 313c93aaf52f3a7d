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
