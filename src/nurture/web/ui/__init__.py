"""The marketer's web UI (SPEC §10): server-rendered Jinja2 pages with htmx, login required.

One module per screen group, each with its own ``router``; :mod:`.render` holds what they
share. Pages call the same service functions as the REST API; no business rule lives here.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nurture.errors import NurtureError
from nurture.web.security.errors import error_status
from nurture.web.ui import (
    action_dialog,
    activity_dialog,
    auth,
    campaigns,
    filters,
    participants,
    previews,
    records,
    testmode,
    workflow,
)
from nurture.web.ui.render import (
    STATIC_DIR,
    LoginRequired,
    _file_hash,
    is_htmx,
    login_url,
    render,
)

ROUTERS = (
    auth.router,
    campaigns.router,
    filters.router,
    workflow.router,
    activity_dialog.router,
    previews.router,
    action_dialog.router,
    testmode.router,
    participants.router,
    records.router,
)

#: paths answered by the JSON error handlers (API clients, tracking links, probes)
_JSON_PREFIXES = ("/api/", "/t/", "/unsubscribe/", "/healthz", "/readyz", "/openapi.json", "/docs", "/static/")

_TITLES = {
    400: "This request could not be understood",
    401: "Please sign in",
    403: "You are not allowed to do this",
    404: "Page not found",
    405: "Not allowed here",
    409: "This conflicts with the current state",
    413: "This is too large",
    422: "Some values are not valid",
    429: "Too many attempts",
}


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(_JSON_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "") or is_htmx(request)


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def _static_route(app: FastAPI) -> None:
    root = STATIC_DIR.resolve()

    @app.get("/static/{digest}/{path:path}", include_in_schema=False)
    def static_file(digest: str, path: str) -> Response:
        target = (root / path).resolve()
        if not target.is_file() or root not in target.parents:
            return Response(status_code=404)
        immutable = digest == _file_hash(path)
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache"
        }
        return FileResponse(target, headers=headers)


def install_ui(app: FastAPI) -> None:
    """Add the UI's pages, static files and HTML error pages to ``app``."""
    _static_route(app)
    for router in ROUTERS:
        app.include_router(router)

    json_http_handler = app.exception_handlers[StarletteHTTPException]
    json_nurture_handler = app.exception_handlers[NurtureError]

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        url = login_url(exc.next_path)
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": url})
        return Response(status_code=303, headers={"Location": url})

    def _error_page(request: Request, status: int, message: str, headers: Any = None) -> Response:
        title = _TITLES.get(status, "Something went wrong")
        return render(
            request,
            "ui/error.html",
            {"status_code": status, "title": title, "message": message},
            status_code=status,
            headers=headers,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _wants_html(request) or exc.status_code in (204, 304):
            return await _call(json_http_handler, request, exc)
        detail = exc.detail
        message = str(detail.get("message")) if isinstance(detail, dict) else str(detail)
        if exc.status_code == 404:
            message = "There is nothing at this address. It may have been deleted."
        return _error_page(request, exc.status_code, message, exc.headers)

    async def nurture_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NurtureError)
        if not _wants_html(request):
            return await _call(json_nurture_handler, request, exc)
        return _error_page(request, error_status(exc), exc.message)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(NurtureError, nurture_error)
