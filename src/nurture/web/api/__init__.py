"""The REST API under ``/api/v1`` (SPEC §10): one module per resource.

Every route requires an authenticated user (``Authorization: Bearer <token>`` or the UI's
session cookie, in which case state-changing calls need the CSRF token) and checks the
user's role for the operation. Errors have one shape, ``{"error": {"code", "message",
"field"}}`` (see :mod:`.errors`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from nurture.web.api import (
    activities,
    blacklists,
    campaign_metrics,
    campaign_templates,
    campaigns,
    email_templates,
    filters,
    lists,
    messages,
    participants,
    record_files,
    records,
    server_actions,
    sms_templates,
    tags,
    templates,
    testmode,
    users,
)
from nurture.web.api.errors import install_api_errors
from nurture.web.api.strict import (
    BAD_JSON_RESPONSE,
    make_strict,
    reject_bad_body,
    strict_types,
)
from nurture.web.security.auth import current_user
from nurture.web.security.csrf import csrf_protect

API_PREFIX = "/api/v1"

#: documents the scheme in OpenAPI; authentication itself is :func:`current_user`
bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="nrt_<id>_<secret>",
    description="An API token from `nurture token create --user <login>`.",
)


def api_router() -> APIRouter:
    router = APIRouter(
        prefix=API_PREFIX,
        dependencies=[
            Depends(bearer),
            Depends(current_user),
            Depends(csrf_protect),
            Depends(reject_bad_body),
        ],
    )
    for module_router in (
        record_files.router,  # before records: its paths are not a {record_id}
        records.router,
        filters.router,
        tags.router,
        lists.router,
        blacklists.router,
        campaigns.router,
        campaign_metrics.router,
        activities.router,
        campaign_templates.router,
        testmode.router,
        email_templates.router,
        sms_templates.router,
        messages.messages_router,
        messages.sms_router,
        messages.links_router,
        participants.router,
        server_actions.router,
        templates.router,
        users.users_router,
        users.me_router,
        users.audit_router,
    ):
        for route in module_router.routes:
            if isinstance(route, APIRoute):
                make_strict(route)  # strict JSON bodies and types (see .strict)
                if route.body_field is not None:
                    route.responses = {**BAD_JSON_RESPONSE, **route.responses}
                    strict_types(route.body_field.field_info.annotation)
        router.include_router(module_router)
    return router


def install_api(app: FastAPI) -> None:
    """Mount the API and its error bodies (after ``install_security``)."""
    app.include_router(api_router())
    install_api_errors(app)


__all__ = ["API_PREFIX", "api_router", "install_api"]
