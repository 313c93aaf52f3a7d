"""Browser tests of the web UI: the real app served by uvicorn, Debian's Chromium via Playwright.

* ``ui`` — the app on the test database (SQLite and PostgreSQL, like every database test),
  served on a free loopback port in a thread, with an admin, a marketer and a viewer whose
  password is :data:`PASSWORD`.
* ``browser`` — one headless Chromium (``/usr/bin/chromium``, never a downloaded build) per
  session; ``page`` — a fresh context and page per test; ``ui.login(page, role)`` signs in
  through the login form.
* ``shot(page, name)`` saves a screenshot to ``tests/ui/screenshots/`` (ignored by git) at the
  page's current width; ``ui_widths`` are the two widths every screen must work at.
* ``axe(page)`` runs axe-core (vendored under ``tests/ui/vendor``) and returns the serious
  and critical violations.
* ``count_sql(db)`` counts the SQL statements the app runs inside a block (N+1 checks).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from sqlalchemy import event

from nurture.accounts import users
from nurture.clock import utcnow
from nurture.config import Settings
from nurture.db import Database
from nurture.runtime import Runtime
from nurture.web.app import create_app

CHROMIUM = os.environ.get("NURTURE_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
SECRET_KEY = "k" * 40
HERE = Path(__file__).parent
SCREENSHOTS = HERE / "screenshots"
AXE = HERE / "vendor" / "axe-core-4.14.1" / "axe.min.js"
UI_WIDTHS = (1280, 390)
ROLES = ("admin", "marketer", "viewer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UiServer:
    base_url: str
    db: Database
    settings: Settings
    user_ids: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def login(self, page: Page, role: str = "admin", next_path: str = "/campaigns") -> None:
        page.goto(self.url(f"/login?next={next_path}"))
        page.get_by_label("Email").fill(f"{role}@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**{next_path}*")


@contextmanager
def serve_app(db: Database, data_dir: Path) -> Iterator[UiServer]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=data_dir,
        database_url=db.url,
        secret_key=SECRET_KEY,
        base_url=base_url,
        embedded_worker=False,
        log_level="WARNING",
    )
    app = create_app(Runtime(settings=settings, db=db))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield UiServer(base_url=base_url, db=db, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def ui_server(db: Database, tmp_path: Path) -> Iterator[UiServer]:
    """The app served on loopback, with no user yet (first start)."""
    with serve_app(db, tmp_path) as server:
        yield server


@pytest.fixture
def ui(ui_server: UiServer) -> UiServer:
    """The served app with an admin, a marketer and a viewer (password :data:`PASSWORD`)."""
    now = utcnow()
    with ui_server.db.transaction() as s:
        for role in ROLES:
            user = users.create_user(
                s,
                login=f"{role}@example.com",
                role=role,
                name=f"{role.title()} User",
                password=PASSWORD,
                now=now,
            )
            ui_server.user_ids[role] = user.id
    return ui_server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": UI_WIDTHS[0], "height": 900})
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
    # A CSP violation or a script error is a defect of the page, not noise.
    csp = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    assert not csp, f"CSP violations on the page: {csp}"


@pytest.fixture
def ui_widths() -> tuple[int, ...]:
    return UI_WIDTHS


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot of the page as ``tests/ui/screenshots/<name>-<width>.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = SCREENSHOTS / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@functools.cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8") + "\n;undefined"


def axe(page: Page) -> list[dict[str, Any]]:
    """Serious and critical accessibility violations on the current page (axe-core)."""
    # Evaluated through the DevTools protocol: a <script> tag would (rightly) be refused by
    # the page's CSP.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def filter_code_view(page: Page) -> Locator:
    """The filter builder's code view (the domain as text), opened if it is closed."""
    details = page.locator("details.fb-code")
    expect(details.locator("summary")).to_be_visible()
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    code = details.locator("textarea")
    expect(code).to_be_visible()
    return code


@contextmanager
def count_sql(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db`` inside the block (for N+1 checks)."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
