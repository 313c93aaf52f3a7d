"""Server actions: ``/api/v1/server-actions`` (reusable actions on a target model, SPEC §8).

Secrets of an action (a webhook's signing secret) are shown once, in the answer to the
creation or to ``POST /server-actions/{id}/rotate-secret``; every other answer leaves them
out of ``payload`` and gives only ``secret_hint`` (the last four characters).
"""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from nurture import actions
from nurture.actions import service as action_service
from nurture.actions.base import masked_payload
from nurture.campaigns.models import ServerAction
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Now,
    Offset,
    Page,
    ReadSession,
    Timestamp,
    WriteSession,
    enum_of,
    one_or_404,
    paginate,
)
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(
    prefix="/server-actions", tags=["server actions"], responses={**AUTH_ERRORS, **NOT_FOUND}
)
Reader = Annotated[CurrentUser, Depends(require("server_actions.read"))]
Writer = Annotated[CurrentUser, Depends(require("server_actions.write"))]
TARGETS = [m.name for m in REGISTRY.targets()]
TagNames = list[Annotated[str, Field(min_length=1, max_length=100)]]
ACTION_TYPES = list(actions.action_types())
#: whether the campaign service stores a payload for every action type (SPEC §8 kinds)
SERVICE_TAKES_PAYLOAD = "payload" in inspect.signature(action_service.create_server_action).parameters


class ServerActionOut(BaseModel):
    id: int
    name: str
    model: str
    action_type: str
    payload: dict[str, Any] = Field(
        description='{"set": {field: value}, "add_tags": [names], "remove_tags": [names]}'
        " (secrets left out)"
    )
    secret_hint: str | None = Field(
        default=None, description="The last characters of the action's secret, if it has one."
    )
    secret: str | None = Field(
        default=None,
        description="The secret itself: only in the answer to the creation or a rotation.",
    )
    created_at: Timestamp


class ServerActionIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(json_schema_extra=enum_of(TARGETS), description="Target model.")
    action_type: str = Field(
        default="update_record", max_length=64, json_schema_extra=enum_of(ACTION_TYPES)
    )
    payload: dict[str, Any] | None = Field(
        default=None, description="The action's settings (format per action type)."
    )
    values: dict[str, Any] | None = Field(
        default=None, description="update_record shorthand: fields to set."
    )
    add_tags: TagNames | None = Field(default=None, max_length=100)
    remove_tags: TagNames | None = Field(default=None, max_length=100)


class ServerActionPatch(BaseModel):
    """Fields to change; the payload is validated again as on creation."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    model: str | None = Field(
        default=None,
        json_schema_extra=enum_of(TARGETS),
        description="Target model (not while an activity uses the action).",
    )
    action_type: str | None = Field(
        default=None, max_length=64, json_schema_extra=enum_of(ACTION_TYPES)
    )
    payload: dict[str, Any] | None = Field(
        default=None, description="The action's settings (format per action type)."
    )
    values: dict[str, Any] | None = Field(
        default=None, description="update_record shorthand: fields to set."
    )
    add_tags: TagNames | None = Field(default=None, max_length=100)
    remove_tags: TagNames | None = Field(default=None, max_length=100)


def action_out(action: ServerAction, *, show_secret: bool = False) -> ServerActionOut:
    payload = json.loads(action.payload or "{}")
    stored = payload if isinstance(payload, dict) else {}
    shown, hint = masked_payload(action.action_type, stored)
    secret = None
    if show_secret:
        secret = next((stored[k] for k in stored if k not in shown), None)
    return ServerActionOut(
        id=action.id,
        name=action.name,
        model=action.model,
        action_type=action.action_type,
        payload=shown,
        secret_hint=hint,
        secret=secret,
        created_at=action.created_at,
    )


@router.get("", summary="List server actions")
def list_actions(
    _user: Reader,
    session: ReadSession,
    model: Annotated[str | None, Query(max_length=64, json_schema_extra=enum_of(TARGETS))] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[ServerActionOut]:
    stmt = select(ServerAction)
    if model is not None:
        stmt = stmt.where(ServerAction.model == model)
    rows, next_cursor = paginate(
        session, stmt, ServerAction.id, limit=limit, cursor=cursor, offset=offset
    )
    return Page[ServerActionOut](items=[action_out(a) for a in rows], next_cursor=next_cursor)


@router.post("", status_code=201, summary="Create a server action")
def create_action(_user: Writer, session: WriteSession, now: Now, body: ServerActionIn) -> ServerActionOut:
    if body.payload is not None and SERVICE_TAKES_PAYLOAD:
        create: Any = cast(Any, action_service.create_server_action)
        action = create(
            session=session,
            now=now,
            name=body.name,
            model=body.model,
            action_type=body.action_type,
            payload=body.payload,
        )
        return action_out(action, show_secret=True)
    values, add_tags, remove_tags = body.values, body.add_tags, body.remove_tags
    if body.payload is not None:
        if body.action_type != "update_record":
            raise ValidationError(
                f"server actions of type {body.action_type!r} cannot be created yet: the "
                "campaign service stores only update_record actions",
                field="action_type",
            )
        values = body.payload.get("set") if isinstance(body.payload.get("set"), dict) else None
        add_tags = _names(body.payload.get("add_tags"), "payload.add_tags")
        remove_tags = _names(body.payload.get("remove_tags"), "payload.remove_tags")
    action = action_service.create_server_action(
        session=session,
        now=now,
        name=body.name,
        model=body.model,
        action_type=body.action_type,
        values=values,
        add_tags=add_tags,
        remove_tags=remove_tags,
    )
    return action_out(action)


def _names(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{field}: expected a list of tag names", field=field)
    return list(value)


@router.get("/{action_id}", summary="Get a server action")
def get_action(action_id: Id, _user: Reader, session: ReadSession) -> ServerActionOut:
    return action_out(one_or_404(session.get(ServerAction, action_id), "server action", action_id))


@router.patch("/{action_id}", summary="Edit a server action", responses=CONFLICT)
def patch_action(
    action_id: Id, _user: Writer, session: WriteSession, now: Now, body: ServerActionPatch
) -> ServerActionOut:
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in body.model_fields_set
        if getattr(body, name) is not None
    }
    action = action_service.update_server_action(
        session=session, now=now, action_id=action_id, **changes
    )
    return action_out(action)


@router.post(
    "/{action_id}/rotate-secret",
    summary="Replace the action's secret with a new generated one (shown once)",
)
def rotate_secret(action_id: Id, _user: Writer, session: WriteSession, now: Now) -> ServerActionOut:
    action, _secret = action_service.rotate_server_action_secret(
        session=session, now=now, action_id=action_id
    )
    return action_out(action, show_secret=True)


@router.delete(
    "/{action_id}",
    status_code=204,
    summary="Delete a server action (refused while an activity uses it)",
    responses=CONFLICT,
)
def delete_action(action_id: Id, _user: Writer, session: WriteSession, now: Now) -> Response:
    action_service.delete_server_action(session=session, now=now, action_id=action_id)
    return Response(status_code=204)
