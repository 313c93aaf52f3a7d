"""The shell: first-start setup, sign in and out, navigation, account, error pages, roles."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from playwright.sync_api import Page, expect

from nurture.accounts.setup import make_setup_token
from nurture.clock import utcnow
from tests.ui.conftest import PASSWORD, UiServer, axe, shot


def test_first_start_setup_link_creates_the_admin(ui_server: UiServer, page: Page) -> None:
    token = make_setup_token(ui_server.settings.secret_key, now=utcnow())
    page.goto(ui_server.url(f"/setup?token={token}"))
    expect(page.get_by_role("heading", name="Welcome to Nurture")).to_be_visible()
    shot(page, "setup")
    assert axe(page) == []
    page.get_by_label("Your name").fill("Ada Admin")
    page.get_by_label("Email (your login)").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD + "x")
    page.get_by_role("button", name="Create the administrator").click()
    expect(page.get_by_role("alert")).to_contain_text("the two passwords differ")
    # the user's input is kept
    expect(page.get_by_label("Email (your login)")).to_have_value("ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create the administrator").click()
    page.wait_for_url("**/campaigns")
    expect(page.get_by_text("your administrator account is ready")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Ada Admin")
    # the link is single use: /setup is gone
    response = page.goto(ui_server.url(f"/setup?token={token}"))
    assert response is not None and response.status == 404


def test_setup_refuses_forged_and_expired_links(ui_server: UiServer) -> None:
    with httpx.Client(base_url=ui_server.base_url) as client:
        assert client.get("/setup?token=123.abc").status_code == 403
        old = make_setup_token(ui_server.settings.secret_key, now=utcnow() - timedelta(hours=2))
        r = client.get(f"/setup?token={old}", headers={"accept": "text/html"})
        assert r.status_code == 403 and "expired" in r.text


def test_sign_in_out_and_wrong_password(ui: UiServer, page: Page) -> None:
    page.goto(ui.url("/campaigns"))
    page.wait_for_url(re.compile(r".*/login\?next=/campaigns$"))
    shot(page, "login")
    assert axe(page) == []
    page.get_by_label("Email").fill("marketer@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/campaigns")
    expect(page.get_by_role("link", name="Campaigns", exact=True)).to_have_attribute("aria-current", "page")
    page.get_by_text("Marketer User").click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def test_login_never_redirects_to_another_site(ui: UiServer, page: Page) -> None:
    ui.login(page, "admin", next_path="/campaigns")
    page.goto(ui.url("/login?next=//evil.example/x"))
    page.wait_for_url("**/campaigns")
    assert page.url.startswith(ui.base_url)


def test_account_page_changes_password_and_creates_tokens(ui: UiServer, page: Page) -> None:
    ui.login(page, "viewer")
    page.goto(ui.url("/account"))
    shot(page, "account")
    assert axe(page) == []
    page.get_by_label("Token name").fill("My script")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("code.token").inner_text()
    assert token.startswith("nrt_")
    with httpx.Client(base_url=ui.base_url) as client:
        me = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
    page.get_by_label("Current password").fill("wrong")
    page.get_by_label("New password", exact=True).fill("another good password 42")
    page.get_by_label("New password again").fill("another good password 42")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("the current password is wrong")).to_be_visible()


def test_forged_csrf_token_is_refused(ui: UiServer, page: Page) -> None:
    ui.login(page, "admin")
    page.goto(ui.url("/account"))
    page.locator("form[action='/account/tokens'] input[name=csrf_token]").evaluate(
        "el => el.value = 'forged'"
    )
    page.get_by_label("Token name").fill("x")
    with page.expect_response(lambda r: r.url.endswith("/account/tokens")) as info:
        page.get_by_role("button", name="Create token").click()
    assert info.value.status == 403


def test_unknown_page_is_an_html_404_and_api_stays_json(ui: UiServer, page: Page) -> None:
    ui.login(page, "admin")
    response = page.goto(ui.url("/no/such/page"))
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    with httpx.Client(base_url=ui.base_url) as client:
        r = client.get("/api/v1/nothing", headers={"accept": "text/html"})
        assert r.status_code in (401, 404) and r.headers["content-type"].startswith("application/json")


def test_static_assets_are_content_hashed_and_cached(ui: UiServer) -> None:
    with httpx.Client(base_url=ui.base_url) as client:
        html = client.get("/login").text
        css = re.search(r'href="(/static/[0-9a-f]{12}/app\.css)"', html)
        assert css is not None
        r = client.get(css.group(1))
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert client.get("/static/000000000000/../../app.py").status_code == 404
        assert "script-src 'self'" in r.headers["content-security-policy"]
