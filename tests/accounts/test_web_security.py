from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Form, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import select

from nurture.accounts import audit, logins, tokens, users
from nurture.accounts.models import ApiToken, WebSession
from nurture.config import Settings
from nurture.db import Database
from nurture.errors import Conflict, ValidationError
from nurture.runtime import Runtime
from nurture.web.security.auth import CurrentUser, current_user, require
from nurture.web.security.config import client_ip
from nurture.web.security.cookies import SESSION_COOKIE, sign_value, unsign_value
from nurture.web.security.csrf import CSRF_HEADER, csrf_protect, csrf_token
from nurture.web.security.install import install_security
from nurture.web.security.sessions import end_session, login_with_password

PASSWORD = "s3cret-passphrase"
T0 = datetime(2026, 3, 2, 9, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def build_app(
    db: Database, tmp_path: Path, clock: Clock, *, base_url: str = "http://testserver"
) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path, database_url=db.url, secret_key="k" * 40, base_url=base_url
    )
    app = FastAPI()
    app.state.runtime = Runtime(settings=settings, db=db)
    install_security(app, settings, max_body_bytes=2048, now=clock)

    @app.get("/me")
    def me(user: Annotated[CurrentUser, Depends(current_user)]) -> dict[str, object]:
        return {"login": user.login, "role": user.role, "via": user.via}

    @app.get("/records")
    def records(user: Annotated[CurrentUser, Depends(require("records.read"))]) -> dict[str, str]:
        return {"ok": user.login}

    @app.post("/campaigns", dependencies=[Depends(csrf_protect)])
    def create_campaign(
        name: Annotated[str, Form()],
        user: Annotated[CurrentUser, Depends(require("campaigns.write"))],
    ) -> dict[str, str]:
        return {"created": name}

    @app.delete("/campaigns/1", dependencies=[Depends(csrf_protect)])
    def delete_campaign(
        request: Request,
        user: Annotated[CurrentUser, Depends(require("campaigns.write"))],
    ) -> dict[str, str]:
        with db.transaction() as s:
            audit.audit(
                s,
                user,
                "campaign.delete",
                ("campaign", 1),
                {"name": "Welcome"},
                now=clock(),
                ip=client_ip(request),
            )
        return {"deleted": "1"}

    @app.post("/users")
    def create_user(
        user: Annotated[CurrentUser, Depends(require("users.write"))],
    ) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/login")
    def login_form(request: Request, response: Response) -> dict[str, str]:
        return {"csrf_token": csrf_token(request, response)}

    @app.post("/login", dependencies=[Depends(csrf_protect)])
    def login(
        request: Request,
        response: Response,
        login: Annotated[str, Form()],
        password: Annotated[str, Form()],
    ) -> dict[str, object]:
        result = login_with_password(request, response, login, password)
        if isinstance(result, logins.LoginRefused):
            raise result
        return {"login": result.login, "csrf_token": result.csrf_token}

    @app.post("/logout", dependencies=[Depends(csrf_protect)])
    def logout(
        request: Request, response: Response, user: Annotated[CurrentUser, Depends(current_user)]
    ) -> dict[str, str]:
        end_session(request, response)
        return {"bye": user.login}

    @app.get("/form")
    def form(
        request: Request, response: Response, user: Annotated[CurrentUser, Depends(current_user)]
    ) -> dict[str, str]:
        return {"csrf_token": csrf_token(request, response)}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/invalid")
    def invalid() -> None:
        raise ValidationError("name is required", field="name")

    @app.get("/conflict")
    def conflict() -> None:
        raise Conflict("already running")

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(db: Database, tmp_path: Path, clock: Clock, fast_hashing: object) -> FastAPI:
    with db.transaction() as s:
        for login, role in [
            ("admin@example.com", "admin"),
            ("marketer@example.com", "marketer"),
            ("viewer@example.com", "viewer"),
        ]:
            users.create_user(s, login=login, role=role, password=PASSWORD, now=T0)
    return build_app(db, tmp_path, clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _token(db: Database, login: str) -> str:
    with db.transaction() as s:
        token, _ = tokens.create_token(s, users.get_user_by_login(s, login), "test", now=T0)
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(client: TestClient, login: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    anonymous = client.get("/login").json()["csrf_token"]
    response = client.post(
        "/login", data={"login": login, "password": password, "csrf_token": anonymous}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/me", "/records"])
def test_no_credentials_is_401(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_bearer_token_works_and_updates_last_used(
    client: TestClient, db: Database, clock: Clock
) -> None:
    token = _token(db, "viewer@example.com")
    clock.now = T0 + timedelta(hours=2)
    response = client.get("/me", headers=_bearer(token))
    assert response.status_code == 200
    assert response.json() == {"login": "viewer@example.com", "role": "viewer", "via": "token"}
    with db.read() as s:
        assert s.scalars(select(ApiToken.last_used_at)).one() == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    "header",
    ["Bearer nrt_1_" + "x" * 43, "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token", "nrt_1_abc"],
)
def test_bad_authorization_header_is_401(client: TestClient, header: str) -> None:
    response = client.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_revoked_token_is_401(client: TestClient, db: Database) -> None:
    token = _token(db, "marketer@example.com")
    assert client.get("/me", headers=_bearer(token)).status_code == 200
    with db.transaction() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
        tokens.revoke_token(s, token_id, now=T0)
    response = client.get("/me", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json()["message"] == "invalid or revoked API token"


def test_token_of_deactivated_user_is_401(client: TestClient, db: Database) -> None:
    token = _token(db, "marketer@example.com")
    with db.transaction() as s:
        users.deactivate(s, users.get_user_by_login(s, "marketer@example.com"), now=T0)
    assert client.get("/me", headers=_bearer(token)).status_code == 401


# --- authorisation -------------------------------------------------------------------------

MATRIX = [
    # (role, method, path, expected status)
    ("viewer", "GET", "/records", 200),
    ("viewer", "DELETE", "/campaigns/1", 403),
    ("viewer", "POST", "/users", 403),
    ("marketer", "GET", "/records", 200),
    ("marketer", "DELETE", "/campaigns/1", 200),
    ("marketer", "POST", "/users", 403),
    ("admin", "GET", "/records", 200),
    ("admin", "DELETE", "/campaigns/1", 200),
    ("admin", "POST", "/users", 200),
]


@pytest.mark.parametrize(("role", "method", "path", "status"), MATRIX)
def test_role_matrix_with_tokens(
    client: TestClient, db: Database, role: str, method: str, path: str, status: int
) -> None:
    token = _token(db, f"{role}@example.com")
    response = client.request(method, path, headers=_bearer(token))
    assert response.status_code == status, response.text
    if status == 403:
        body = response.json()
        assert body["code"] == "forbidden"
        assert f"your role ({role}) does not allow" in body["message"]


def test_require_rejects_unknown_action_at_declaration() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        require("campaign.launch")


# --- sessions and CSRF ---------------------------------------------------------------------


def test_login_sets_hardened_session_cookie(client: TestClient) -> None:
    anonymous = client.get("/login").json()["csrf_token"]
    response = client.post(
        "/login",
        data={"login": "marketer@example.com", "password": PASSWORD, "csrf_token": anonymous},
    )
    assert response.status_code == 200
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in this test
    assert client.get("/me").json() == {
        "login": "marketer@example.com",
        "role": "marketer",
        "via": "session",
    }


def test_secure_cookie_over_https(db: Database, tmp_path: Path, clock: Clock) -> None:
    with db.transaction() as s:
        users.create_user(s, login="m@example.com", role="marketer", password=PASSWORD, now=T0)
    app = build_app(db, tmp_path, clock)
    with TestClient(app, base_url="https://testserver") as client:
        anonymous = client.get("/login").json()["csrf_token"]
        response = client.post(
            "/login", data={"login": "m@example.com", "password": PASSWORD, "csrf_token": anonymous}
        )
        assert response.status_code == 200
        cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        session_cookie = next(c for c in cookies if c.startswith(SESSION_COOKIE))
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
        assert response.headers["strict-transport-security"].startswith("max-age=")


def test_csrf_required_for_session_form_posts(client: TestClient) -> None:
    token = _login(client, "marketer@example.com")
    missing = client.post("/campaigns", data={"name": "Welcome"})
    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_failed"
    assert "security token is missing or does not match" in missing.json()["message"]
    wrong = client.post("/campaigns", data={"name": "Welcome", "csrf_token": "forged"})
    assert wrong.status_code == 403
    ok = client.post("/campaigns", data={"name": "Welcome", "csrf_token": token})
    assert ok.status_code == 200 and ok.json() == {"created": "Welcome"}
    # The header works too (for fetch()-style requests), and for DELETE.
    assert client.delete("/campaigns/1").status_code == 403
    assert client.delete("/campaigns/1", headers={CSRF_HEADER: token}).status_code == 200
    # The form page hands out the same per-session token.
    assert client.get("/form").json()["csrf_token"] == token


def test_csrf_token_is_per_session(client: TestClient, app: FastAPI) -> None:
    first = _login(client, "marketer@example.com")
    with TestClient(app) as other:
        second = _login(other, "marketer@example.com")
        assert second != first
        assert other.post("/campaigns", data={"name": "x", "csrf_token": first}).status_code == 403


def test_login_form_itself_needs_csrf(client: TestClient) -> None:
    response = client.post("/login", data={"login": "marketer@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_bearer_requests_are_exempt_from_csrf(client: TestClient, db: Database) -> None:
    token = _token(db, "marketer@example.com")
    response = client.post("/campaigns", data={"name": "API"}, headers=_bearer(token))
    assert response.status_code == 200


def test_logout_ends_the_session_server_side(client: TestClient) -> None:
    token = _login(client, "viewer@example.com")
    stolen = client.cookies.get(SESSION_COOKIE)
    assert client.post("/logout", headers={CSRF_HEADER: token}).status_code == 200
    assert client.get("/me").status_code == 401
    # Replaying the old cookie does not work either.
    assert stolen is not None
    client.cookies.set(SESSION_COOKIE, stolen)
    assert client.get("/me").status_code == 401


def test_forged_or_expired_session_cookie_is_anonymous(client: TestClient, clock: Clock) -> None:
    _login(client, "viewer@example.com")
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie is not None
    sid, _, mac = cookie.rpartition(".")
    client.cookies.set(SESSION_COOKIE, f"{sid}.{mac[:-2]}xx")
    assert client.get("/me").status_code == 401
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/me").status_code == 200
    clock.now = T0 + timedelta(days=30)
    assert client.get("/me").status_code == 401


def test_wrong_password_and_lockout_through_the_form(client: TestClient, clock: Clock) -> None:
    anonymous = client.get("/login").json()["csrf_token"]
    for _ in range(5):
        response = client.post(
            "/login",
            data={"login": "viewer@example.com", "password": "bad guess!", "csrf_token": anonymous},
        )
        assert response.status_code == 401
        assert response.json()["code"] == "login_invalid_credentials"
    response = client.post(
        "/login",
        data={"login": "viewer@example.com", "password": PASSWORD, "csrf_token": anonymous},
    )
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked"
    assert "try again after" in response.json()["message"]
    assert response.headers["retry-after"] == str(15 * 60)


def test_sign_and_unsign() -> None:
    key = b"k" * 32
    signed = sign_value(key, "abc.def")
    assert unsign_value(key, signed) == "abc.def"
    assert unsign_value(b"x" * 32, signed) is None
    assert unsign_value(key, signed + "x") is None
    assert unsign_value(key, "abc") is None
    assert unsign_value(key, None) is None


# --- hardening -----------------------------------------------------------------------------


def _assert_security_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-frame-options"] == "DENY"


def test_security_headers_on_every_response(client: TestClient, db: Database) -> None:
    for response in (
        client.get("/me"),  # 401
        client.get("/records", headers=_bearer(_token(db, "viewer@example.com"))),  # 200
        client.get("/no-such-page"),  # 404
        client.get("/boom"),  # 500
        client.post("/echo", content=b"x" * 5000),  # 413
    ):
        _assert_security_headers(response)
    assert "strict-transport-security" not in client.get("/me").headers


def test_csp_override_for_a_path(db: Database, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=db.url, secret_key="k" * 40, base_url="http://t"
    )
    app = FastAPI()
    install_security(app, settings, csp_overrides={"/docs": "default-src 'self' cdn.example"})

    @app.get("/docs/x")
    def docs() -> dict[str, str]:
        return {}

    @app.get("/x")
    def other() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        assert (
            client.get("/docs/x").headers["content-security-policy"]
            == "default-src 'self' cdn.example"
        )
        assert "frame-ancestors 'none'" in client.get("/x").headers["content-security-policy"]


def test_body_size_limit(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 2048).json() == {"size": 2048}
    too_big = client.post("/echo", content=b"x" * 2049)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "request_too_large"
    assert "at most 2048 bytes" in too_big.json()["message"]


def test_body_size_limit_without_content_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    response = client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_500_has_no_traceback(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="nurture.web.security"):
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "internal server error; the details were logged on the server",
        "field": None,
    }
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    logged = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert "/boom" in logged and "hunter2" in logged


def test_debug_mode_is_turned_off(db: Database, tmp_path: Path, clock: Clock) -> None:
    app = build_app(db, tmp_path, clock)
    app.debug = True
    settings = app.state.security.settings
    install_security(app, settings)  # what the lead's factory does, even after debug=True
    assert app.debug is False


def test_service_errors_become_consistent_bodies(client: TestClient) -> None:
    invalid = client.get("/invalid")
    assert invalid.status_code == 422
    assert invalid.json() == {"code": "invalid", "message": "name is required", "field": "name"}
    conflict = client.get("/conflict")
    assert conflict.status_code == 409 and conflict.json()["code"] == "conflict"
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_signing_in_again_replaces_the_old_session(client: TestClient, db: Database) -> None:
    _login(client, "viewer@example.com")
    first = client.cookies.get(SESSION_COOKIE)
    _login(client, "marketer@example.com")
    assert client.cookies.get(SESSION_COOKIE) != first
    with db.read() as s:
        assert len(s.scalars(select(WebSession)).all()) == 1
    assert client.get("/me").json()["login"] == "marketer@example.com"


def test_audit_entry_from_a_request(client: TestClient, db: Database, clock: Clock) -> None:
    token = _token(db, "marketer@example.com")
    clock.now = T0 + timedelta(minutes=5)
    assert client.delete("/campaigns/1", headers=_bearer(token)).status_code == 200
    with db.read() as s:
        entry = audit.list_audit(s, action="campaign.delete").entries[0]
        user = users.get_user_by_login(s, "marketer@example.com")
        assert (entry.user_id, entry.actor, entry.object_type, entry.object_id) == (
            user.id,
            "marketer@example.com",
            "campaign",
            "1",
        )
        assert entry.at == T0 + timedelta(minutes=5) and entry.ip == "testclient"
        assert entry.details == {"name": "Welcome"}
