"""The message template of an activity, one set of routes per channel:
``/api/v1/campaigns/{campaign_id}/activities/{activity_id}/<channel>-template`` (SPEC §6) —
``GET`` (404 when the activity has none), ``PUT`` (create or replace, validated before it
is saved), ``DELETE``, ``GET …/preview?record_id=`` (render for a record).

Storage, save-time validation and rendering are the channel's
(:class:`~nurture.channels.activity_templates.ActivityTemplates`); a template error is a 422
whose message gives the field, line and column. :func:`template_router` makes the routes
from what differs (:class:`TemplateApi`: the schemas and the channel's functions).

(No ``from __future__ import annotations`` here: the route functions are made per channel,
and FastAPI reads their body and response types from the annotations at run time.)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from nurture.channels.activity_templates import ActivityTemplates, TemplateRow
from nurture.errors import NotFound, ValidationError
from nurture.templating import TemplateRenderError
from nurture.web.api.activities import campaign_activity
from nurture.web.api.common import (
    AUTH_ERRORS,
    MAX_ID,
    NOT_FOUND,
    Id,
    Now,
    ReadSession,
    WriteSession,
)
from nurture.web.security.auth import CurrentUser, require

M = TypeVar("M", bound=TemplateRow)
T = TypeVar("T")

Reader = Annotated[CurrentUser, Depends(require("templates.read"))]
Writer = Annotated[CurrentUser, Depends(require("templates.write"))]
#: the ``record_id`` query parameter of the activity template previews
PreviewRecord = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="A record of the campaign's model (default: none)."),
]


def activity_template(
    session: Session,
    campaign_id: int,
    activity_id: int,
    *,
    lookup: Callable[..., T | None],
    channel: str,
) -> T:
    """The stored template of an activity of the campaign (``lookup``: the channel's
    ``template_for_activity``), or 404 naming what is missing."""
    campaign_activity(session, campaign_id, activity_id)
    template = lookup(session=session, activity_id=activity_id)
    if template is None:
        raise NotFound(f"activity {activity_id} has no {channel} template", field="activity_id")
    return template


def rendered(render: Callable[[], T], field: str) -> T:
    """``render()``, a rendering error becoming a 422 on ``field`` (or the error's own)."""
    try:
        return render()
    except TemplateRenderError as exc:
        raise ValidationError(exc.message, field=exc.field or field) from None


@dataclass(frozen=True)
class TemplateApi(Generic[M]):
    """What the routes of one channel's activity templates need."""

    #: ``email``, ``sms``: the path (``<slug>-template``), tag and route names
    slug: str
    #: how summaries and errors name the channel ("email", "SMS")
    label: str
    templates: ActivityTemplates[M]
    #: the template as the API shows it, and its schema
    out: Callable[[M], BaseModel]
    out_model: type[BaseModel]
    #: the PUT body's schema, and the save: ``put(session, now, activity_id, body)``
    put_model: type[BaseModel]
    put: Callable[[Session, datetime, int, Any], M]
    #: the preview for a record (``preview(session, template_id, record_id)``), its schema,
    #: and the field a rendering error names by default
    preview: Callable[[Session, int, int | None], BaseModel]
    preview_model: type[BaseModel]
    preview_field: str
    put_responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)


def template_router(api: TemplateApi[M]) -> APIRouter:
    """The ``GET``/``PUT``/``DELETE``/preview routes of ``api``'s channel."""
    label, slug = api.label, api.slug
    router = APIRouter(
        prefix=f"/campaigns/{{campaign_id}}/activities/{{activity_id}}/{slug}-template",
        tags=[f"{slug} templates"],
        responses={**AUTH_ERRORS, **NOT_FOUND},
    )

    def stored(session: Session, campaign_id: int, activity_id: int) -> M:
        return activity_template(
            session, campaign_id, activity_id, lookup=api.templates.for_activity, channel=label
        )

    @router.get(
        "",
        summary=f"Get the {label} template of an {label} activity",
        response_model=api.out_model,
        name=f"get_{slug}_template",
    )
    def get(campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession) -> Any:
        return api.out(stored(session, campaign_id, activity_id))

    @router.put(
        "",
        summary=f"Create or replace the {label} template of an {label} activity",
        response_model=api.out_model,
        responses=api.put_responses,
        name=f"put_{slug}_template",
    )
    def put(
        campaign_id: Id,
        activity_id: Id,
        _user: Writer,
        session: WriteSession,
        now: Now,
        body: api.put_model,  # type: ignore[name-defined]
    ) -> Any:
        campaign_activity(session, campaign_id, activity_id)
        return api.out(api.put(session, now, activity_id, body))

    @router.delete(
        "",
        status_code=204,
        summary=f"Delete the {label} template of an {label} activity",
        name=f"delete_{slug}_template",
    )
    def delete(campaign_id: Id, activity_id: Id, _user: Writer, session: WriteSession) -> Response:
        template = stored(session, campaign_id, activity_id)
        api.templates.delete(session=session, template_id=template.id)
        return Response(status_code=204)

    @router.get(
        "/preview",
        summary=f"Render the {label} template for a record",
        response_model=api.preview_model,
        name=f"preview_{slug}_template",
    )
    def preview(
        campaign_id: Id,
        activity_id: Id,
        _user: Reader,
        session: ReadSession,
        record_id: PreviewRecord = None,
    ) -> Any:
        template = stored(session, campaign_id, activity_id)
        return rendered(lambda: api.preview(session, template.id, record_id), api.preview_field)

    return router
