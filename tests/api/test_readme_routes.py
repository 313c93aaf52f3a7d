"""Every ``/api/v1`` route the README names exists in the OpenAPI document, with its method.

The README's examples write routes as ``$API/…`` (``API=http://…/api/v1``) or ``/api/v1/…``;
a ``curl`` command's method is its ``-X``, else POST when it sends a body (``-d``, ``-F``),
else GET. ``$VARS`` (and ``$(…)``), numbers and ``{names}`` stand for a path parameter; a literal segment
may also fill a parameter (``/records/contact`` is ``/records/{model}``).
"""

from __future__ import annotations

import re
from pathlib import Path

from nurture.config import Settings
from nurture.db import Database
from nurture.runtime import Runtime
from nurture.web.app import create_app

README = Path(__file__).resolve().parents[2] / "README.md"
_ROUTE = re.compile(r"(?:\$API|\$\{API\}|/api/v1)(/[A-Za-z0-9_{}<>$.:-]+(?:/[A-Za-z0-9_{}<>$.:-]+)*)")
_PARAM = re.compile(r"^(\$\w*|\{\w+\}|<\w+>|\d+)$")


def _openapi_paths(tmp_path: Path) -> dict[str, set[str]]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        secret_key="s" * 40,
        base_url="http://testserver",
        embedded_worker=False,
    )
    app = create_app(Runtime(settings=settings, db=Database(settings.database_url)))
    paths: dict[str, set[str]] = {}
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/v1/"):
            paths[path[len("/api/v1"):]] = {m.upper() for m in operations}
    return paths


def _commands(text: str) -> list[str]:
    """README lines, with shell continuations (``\\`` at the end) joined."""
    return text.replace("\\\n", " ").splitlines()


def readme_routes(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for line in _commands(text):
        routes = [m.group(1).rstrip(".,:") for m in _ROUTE.finditer(line)]
        if not routes:
            continue
        method = "GET"
        explicit = re.search(r"\s-X\s*([A-Z]+)", line)
        if explicit:
            method = explicit.group(1)
        elif re.search(r"\s-(d|F)\s", line) and "curl" in line:
            method = "POST"
        for route in routes:
            found.append((method if "curl" in line else "ANY", route))
    return found


def _matches(route: str, template: str) -> bool:
    have, want = route.strip("/").split("/"), template.strip("/").split("/")
    if len(have) != len(want):
        return False
    for segment, expected in zip(have, want, strict=True):
        if segment == expected:
            continue
        if expected.startswith("{") and (_PARAM.match(segment) or re.match(r"^[\w-]+$", segment)):
            continue
        return False
    return True


def test_readme_names_routes_that_exist(tmp_path: Path) -> None:
    paths = _openapi_paths(tmp_path)
    routes = readme_routes(README.read_text(encoding="utf-8"))
    assert len(routes) >= 20  # the examples are found at all
    wrong = []
    for method, route in routes:
        templates = [t for t in paths if _matches(route, t)]
        if not templates:
            wrong.append(f"{route}: no such route")
        elif method != "ANY" and not any(method in paths[t] for t in templates):
            wrong.append(f"{method} {route}: method not allowed ({templates})")
    assert not wrong, "README routes that do not exist:\n" + "\n".join(wrong)


def test_the_checker_catches_a_wrong_route(tmp_path: Path) -> None:
    paths = _openapi_paths(tmp_path)
    sample = (
        'curl -s "$API/blacklists/email" -H "$AUTH"\n'
        'curl -s -X DELETE "$API/campaigns/$C/start"\n'
        "see `/api/v1/sms-messages/12`\n"
    )
    routes = readme_routes(sample)
    assert routes == [("GET", "/blacklists/email"), ("DELETE", "/campaigns/$C/start"), ("ANY", "/sms-messages/12")]
    assert not any(_matches("/blacklists/email", t) for t in paths)
    (start,) = [t for t in paths if _matches("/campaigns/$C/start", t)]
    assert "DELETE" not in paths[start]
    assert any(_matches("/sms-messages/12", t) for t in paths)
