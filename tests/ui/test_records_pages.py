"""The navigation's record pages: a searchable read-only list, one query per page size."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from nurture.clock import utcnow
from nurture.records import models as m
from tests.ui.conftest import UiServer, axe, count_sql, shot


def _contacts(ui: UiServer, n: int, start: int = 0) -> None:
    now = utcnow()
    with ui.db.transaction() as s:
        s.execute(
            insert(m.Contact),
            [
                {"name": f"Person {i:04d}", "email": f"p{i}@example.com", "active": True,
                 "salesperson_id": ui.user_ids["marketer"], "created_at": now, "updated_at": now}
                for i in range(start, start + n)
            ],
        )


def test_contacts_list_search_and_pages(ui: UiServer, page: Page) -> None:
    _contacts(ui, 60)
    ui.login(page, "viewer", next_path="/records/contact")
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    expect(page.get_by_text("60 records · showing 1–50")).to_be_visible()
    expect(page.get_by_role("cell", name="Marketer User").first).to_be_visible()
    shot(page, "contacts")
    assert axe(page) == []
    page.get_by_label("Search contacts").fill("person 0042")
    expect(page.get_by_text("1 record matching")).to_be_visible()
    expect(page.get_by_role("cell", name="p42@example.com")).to_be_visible()
    page.goto(ui.url("/records/contact?offset=50"))
    expect(page.get_by_text("showing 51–60")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Leads")).to_be_visible()
    shot(page, "contacts")


def test_statements_do_not_grow_with_rows(ui: UiServer) -> None:
    with httpx.Client(base_url=ui.base_url) as client:
        client.get("/login")
        token = client.cookies.get("nurture_csrf")
        assert token is not None
        html = client.get("/login").text
        csrf = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"login": "admin@example.com", "password": "correct horse battery staple", "csrf_token": csrf})
        counts = []
        for n in (10, 990):
            _contacts(ui, n, start=len(counts) * 10_000)
            with count_sql(ui.db) as statements:
                assert client.get("/records/contact").status_code == 200
            counts.append(len(statements))
        assert counts[0] == counts[1]


def test_unknown_model_is_404(ui: UiServer, page: Page) -> None:
    ui.login(page, "viewer")
    response = page.goto(ui.url("/records/user"))
    assert response is not None and response.status == 404
