"""Authentication and authorisation of the API: the role matrix, 401s, revocation, CSRF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nurture.accounts import sessions, users
from nurture.clock import utcnow
from nurture.web.security.cookies import SESSION_COOKIE, sign_value
from nurture.web.security.csrf import CSRF_HEADER
from tests.api.conftest import Api

V1 = "/api/v1"
ALL = {"admin", "marketer", "viewer"}
WRITERS = {"admin", "marketer"}
ADMIN = {"admin"}

Body = Callable[[int], dict[str, Any]] | None
# (method, path, body (given a counter for unique values), roles allowed)
OPERATIONS: list[tuple[str, str, Body, set[str]]] = [
    ("GET", "/records/contact", None, ALL),
    ("GET", "/records/contact/count", None, ALL),
    ("GET", "/records/contact/fields", None, ALL),
    ("POST", "/records/contact", lambda i: {"name": f"N{i}"}, WRITERS),
    ("GET", "/records/tag", None, ALL),
    ("POST", "/records/mailing_list", lambda i: {"name": f"L{i}"}, WRITERS),
    ("GET", "/tags", None, ALL),
    ("POST", "/tags", lambda i: {"name": f"T{i}"}, WRITERS),
    ("GET", "/lists", None, ALL),
    ("POST", "/lists", lambda i: {"name": f"List {i}"}, WRITERS),
    ("GET", "/blacklist/email", None, ALL),
    ("POST", "/blacklist/email", lambda i: {"email": f"b{i}@example.com"}, WRITERS),
    ("POST", "/blacklist/phone", lambda i: {"number": f"+3247012345{i % 10}"}, WRITERS),
    ("GET", "/campaigns", None, ALL),
    ("POST", "/campaigns", lambda i: {"name": f"C{i}", "model": "contact"}, WRITERS),
    ("POST", "/campaigns/999999/start", None, WRITERS),
    ("POST", "/campaigns/999999/stop", None, WRITERS),
    ("POST", "/campaigns/999999/duplicate", None, WRITERS),
    ("DELETE", "/campaigns/999999", None, WRITERS),
    ("GET", "/participants", None, ALL),
    ("GET", "/traces", None, ALL),
    ("POST", "/campaigns/999999/tests", lambda i: {"res_id": 1}, WRITERS),
    ("GET", "/server-actions", None, ALL),
    (
        "POST",
        "/server-actions",
        lambda i: {"name": f"A{i}", "model": "contact", "add_tags": ["Hot"]},
        WRITERS,
    ),
    (
        "POST",
        "/templates/email/check",
        lambda i: {"model": "contact", "subject": "Hi", "html": "<p>{{ record.name }}</p>"},
        ALL,
    ),
    ("GET", "/users", None, ADMIN),
    ("POST", "/users", lambda i: {"login": f"u{i}@example.com", "role": "viewer"}, ADMIN),
    ("PATCH", "/users/999999", lambda i: {"role": "viewer"}, ADMIN),
    ("GET", "/audit", None, ADMIN),
    ("GET", "/me", None, ALL),
    ("GET", "/me/tokens", None, ALL),
]


@pytest.mark.parametrize("role", sorted(ALL))
def test_role_matrix(api: Api, role: str) -> None:
    client = api.client
    problems = []
    for i, (method, path, body, allowed) in enumerate(OPERATIONS):
        kwargs: dict[str, Any] = {"headers": api.headers(role)}
        if body is not None:
            kwargs["json"] = body(i)
        r = client.request(method, V1 + path, **kwargs)
        if role in allowed:
            if r.status_code in (401, 403) or r.status_code >= 500:
                problems.append(f"{role} {method} {path}: expected allowed, got {r.status_code}")
        elif r.status_code != 403:
            problems.append(f"{role} {method} {path}: expected 403, got {r.status_code}")
        elif r.json()["error"]["code"] != "forbidden":
            problems.append(f"{role} {method} {path}: bad body {r.text}")
    assert not problems, "\n".join(problems)


def test_no_credentials_is_401_everywhere(api: Api) -> None:
    for method, path, body, _allowed in OPERATIONS:
        r = api.client.request(method, V1 + path, json=body(0) if body else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nrt_1_forgedforgedforgedforgedforged", "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_bad_credentials_are_401(api: Api, header: str) -> None:
    r = api.client.get(f"{V1}/campaigns", headers={"Authorization": header})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"code", "message", "field"}


def test_health_and_docs_stay_public(api: Api) -> None:
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    spec = api.client.get("/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    responses = spec["paths"]["/api/v1/campaigns"]["post"]["responses"]
    assert {"201", "401", "403", "422"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorResponse"
    )


def test_token_revocation(api: Api) -> None:
    client = api.client
    h = api.headers("marketer")
    created = client.post(f"{V1}/me/tokens", json={"name": "ci"}, headers=h)
    assert created.status_code == 201
    token = created.json()["token"]
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{V1}/campaigns", headers=mine).status_code == 200
    listed = client.get(f"{V1}/me/tokens", headers=mine).json()
    assert {t["name"] for t in listed} == {"marketer token", "ci"}
    assert all("token" not in t for t in listed)
    # another user's token is not found, not forbidden
    admin_token_id = next(
        t["id"] for t in client.get(f"{V1}/me/tokens", headers=api.headers("admin")).json()
    )
    r = client.post(f"{V1}/me/tokens/{admin_token_id}/revoke", headers=mine)
    assert r.status_code == 404
    revoked = client.post(f"{V1}/me/tokens/{created.json()['id']}/revoke", headers=h)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    r = client.get(f"{V1}/campaigns", headers=mine)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    # the other token of the same user still works
    assert client.get(f"{V1}/campaigns", headers=h).status_code == 200


def test_deactivated_user_token_is_refused(api: Api) -> None:
    admin = api.headers("admin")
    viewer_id = api.user_ids["viewer"]
    r = api.client.patch(f"{V1}/users/{viewer_id}", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    assert api.client.get(f"{V1}/me", headers=api.headers("viewer")).status_code == 401
    r = api.client.patch(f"{V1}/users/{api.user_ids['admin']}", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 409  # the last active admin keeps the role


def test_users_admin_and_audit(api: Api) -> None:
    admin = api.headers("admin")
    r = api.client.post(
        f"{V1}/users", json={"login": "New@Example.com", "role": "marketer"}, headers=admin
    )
    assert r.status_code == 201 and r.json()["login"] == "new@example.com"
    new_id = r.json()["id"]
    r = api.client.post(f"{V1}/users", json={"login": "new@example.com", "role": "viewer"}, headers=admin)
    assert r.status_code == 409
    r = api.client.post(f"{V1}/users", json={"login": "x@example.com", "role": "boss"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    r = api.client.patch(f"{V1}/users/{new_id}", json={"role": "viewer"}, headers=admin)
    assert r.json()["role"] == "viewer"
    token = api.client.post(f"{V1}/users/{new_id}/tokens", json={}, headers=admin).json()["token"]
    assert api.client.get(f"{V1}/me", headers={"Authorization": f"Bearer {token}"}).json()[
        "role"
    ] == "viewer"
    entries = api.client.get(f"{V1}/audit", params={"action": "user.*"}, headers=admin).json()
    actions = [(e["action"], e["actor"]) for e in entries["items"]]
    assert ("user.create", "admin@example.com") in actions
    assert ("user.role_change", "admin@example.com") in actions


def test_session_cookie_needs_csrf_for_writes(api: Api) -> None:
    with api.db.transaction() as session:
        user = users.get_user(session, api.user_ids["marketer"])
        sid, row = sessions.create_session(session, user, now=utcnow())
        csrf = row.csrf_token
    cookie = sign_value(api.app.state.security.signing_key, sid)
    client = api.client
    client.cookies.set(SESSION_COOKIE, cookie)
    try:
        assert client.get(f"{V1}/campaigns").status_code == 200
        r = client.post(f"{V1}/tags", json={"name": "X"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = client.post(f"{V1}/tags", json={"name": "X"}, headers={CSRF_HEADER: csrf})
        assert r.status_code == 201
    finally:
        client.cookies.clear()


def test_request_body_limit(api: Api) -> None:
    big = b"x" * (17 * 1024 * 1024)
    r = api.client.post(
        f"{V1}/records/contact/import",
        files={"file": ("big.csv", big)},
        headers=api.headers("admin"),
    )
    assert r.status_code == 413


def test_413_and_500_use_the_error_shape(api: Api) -> None:
    r = api.client.post(
        f"{V1}/records/contact",
        content=b"x" * (17 * 1024 * 1024),
        headers={**api.headers("admin"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"

    @api.app.get(f"{V1}/boom-for-test")
    def boom() -> None:
        raise RuntimeError("secret internals")

    r = api.client.get(f"{V1}/boom-for-test", headers=api.headers("admin"))
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def _api_routes(api: Api) -> list[tuple[str, str]]:
    spec = api.client.get("/openapi.json").json()
    routes = []
    for path, operations in spec["paths"].items():
        if not path.startswith(V1):
            continue
        for method in operations:
            concrete = path
            for name in ("model",):
                concrete = concrete.replace("{" + name + "}", "contact")
            while "{" in concrete:
                start = concrete.index("{")
                concrete = concrete[:start] + "1" + concrete[concrete.index("}") + 1 :]
            routes.append((method.upper(), concrete))
    return routes


#: non-GET operations a viewer may call: they read (checks, previews, counts) or manage
#: the viewer's own account
VIEWER_POSTS = ("/templates/", "/filters/", "/me/tokens")


def test_every_api_route_requires_a_user(api: Api) -> None:
    routes = _api_routes(api)
    assert len(routes) > 60
    for method, path in routes:
        r = api.client.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)


def test_viewer_cannot_change_anything_and_marketer_cannot_administer(api: Api) -> None:
    problems = []
    for method, path in _api_routes(api):
        is_admin_area = path.startswith((f"{V1}/users", f"{V1}/audit"))
        viewer_ok = method == "GET" or path.startswith(tuple(V1 + p for p in VIEWER_POSTS))
        for role, allowed in (
            ("viewer", viewer_ok and not is_admin_area),
            ("marketer", not is_admin_area),
        ):
            r = api.client.request(method, path, headers=api.headers(role), json={})
            if allowed and r.status_code == 403:
                problems.append(f"{role} {method} {path}: unexpected 403")
            if not allowed and r.status_code != 403:
                problems.append(f"{role} {method} {path}: expected 403, got {r.status_code}")
    assert not problems, "\n".join(problems)
