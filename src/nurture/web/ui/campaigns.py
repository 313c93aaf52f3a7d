"""Web UI: the campaigns board and the campaign form (issue 14, screens 2 and 3).

* ``GET /campaigns`` — the board (New / Running / Stopped), search by name (htmx swaps
  ``#board``); the six template cards when no campaign matches. ``POST
  /campaigns/from-template/{key}`` creates one and opens it.
* ``GET|POST /campaigns/new`` and ``GET|POST /campaigns/{id}`` — the form; ``GET
  /campaigns/model-fields?model=`` swaps the fields that depend on the target model.
* ``POST /campaigns/{id}/{start|stop|update|duplicate|delete}`` — the header buttons.
* ``GET /campaigns/{id}/clicks`` and ``/templates`` — the lists behind two smart counters
  (participants and tests: :mod:`.participants`).

The workflow tree is not rendered here: the form loads ``GET /campaigns/{id}/workflow``
(:mod:`.workflow`) as a separate request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlalchemy.orm import Session

from nurture import campaign_templates
from nurture.accounts import users
from nurture.campaigns import campaigns
from nurture.campaigns.models import Campaign
from nurture.engine import campaign_changes
from nurture.errors import NurtureError, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.reporting import campaign_stats
from nurture.web.api.common import Now
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import (
    UiReadSession,
    UiUser,
    database,
    is_htmx,
    redirect,
    render,
    ui_require,
)

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
Writer = Annotated[CurrentUser, ui_require("campaigns.write")]

#: board columns: (state, title)
COLUMNS = (("draft", "New"), ("running", "Running"), ("stopped", "Stopped"))
STATE_LABELS = {"draft": "New", "running": "Running", "stopped": "Stopped"}


# --- board ---------------------------------------------------------------------------------


@router.get("/campaigns")
def board(
    request: Request, user: UiUser, session: UiReadSession, now: Now, q: str = ""
) -> Response:
    q = q[:200]
    cards = campaign_stats.board_cards(session, now=now, q=q)
    columns = [(state, title, [c for c in cards if c.state == state]) for state, title in COLUMNS]
    context = {
        "q": q,
        "cards": cards,
        "columns": columns,
        "templates": campaign_templates.list_templates(),
        "model_labels": {m.name: m.label for m in REGISTRY.targets()},
        "can_write": user.can("campaigns.write"),
        "breadcrumbs": [("Campaigns", None)],
    }
    if is_htmx(request) and request.headers.get("hx-target") == "board":
        return render(request, "ui/campaigns/_board.html", context)
    return render(request, "ui/campaigns/board.html", context)


@router.post("/campaigns/from-template/{key}")
def create_from_template(
    request: Request, user: Writer, now: Now, key: str
) -> Response:
    try:
        with database(request).transaction() as s:
            campaign = campaign_templates.create_from_template(
                session=s, now=now, key=key, responsible_id=user.id
            )
            audit(
                s, user, "campaign.create", campaign,
                {"name": campaign.name, "template": key}, now=now, request=request,
            )
            campaign_id, name = campaign.id, campaign.name
    except NurtureError as exc:
        return redirect(request, "/campaigns", exc.message, "error")
    return redirect(request, f"/campaigns/{campaign_id}", f"“{name}” was created from its template.")


# --- form ----------------------------------------------------------------------------------


def _unicity_choices(model: str) -> list[tuple[str, str]]:
    mdef = REGISTRY.target(model)
    choices = [("id", "Record (no de-duplication)")]
    for f in mdef.fields.values():
        if f.type in campaigns.UNICITY_TYPES and f.name != "id":
            choices.append((f.name, f.label))
    return choices


def _form_context(
    session: Session,
    *,
    user: CurrentUser,
    campaign: Campaign | None,
    values: dict[str, Any],
    error: NurtureError | None,
) -> dict[str, Any]:
    model = values["model"]
    if model not in {m.name for m in REGISTRY.targets()}:
        model = "contact"
    context: dict[str, Any] = {
        "campaign": campaign,
        "values": values,
        "error": error,
        "targets": [(m.name, m.label) for m in REGISTRY.targets()],
        "unicity_choices": _unicity_choices(model),
        "form_model": model,
        "users": [u for u in users.list_users(session, include_inactive=False)],
        "can_write": user.can("campaigns.write"),
        "state_labels": STATE_LABELS,
    }
    if campaign is None:
        context["breadcrumbs"] = [("Campaigns", "/campaigns"), ("New campaign", None)]
        context["model_locked"] = False
        return context
    counters = campaign_stats.campaign_counters(session, campaign_id=campaign.id)
    has_participants = counters.participants.total + counters.participants.tests > 0
    context.update(
        counters=counters,
        model_locked=campaign.state != "draft" or bool(campaign.activities) or has_participants,
        breadcrumbs=[("Campaigns", "/campaigns"), (campaign.name, None)],
    )
    return context


def _values_of(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "model": campaign.model,
        "domain": campaign.domain or "[]",
        "unicity_field": campaign.unicity_field,
        "include_archived": campaign.include_archived,
        "responsible_id": campaign.responsible_id,
    }


@router.get("/campaigns/new")
def new_form(request: Request, user: Writer, session: UiReadSession) -> Response:
    model = "contact"
    values = {
        "name": "",
        "model": model,
        "domain": "[]",
        "unicity_field": REGISTRY.target(model).default_unicity_field,
        "include_archived": False,
        "responsible_id": user.id,
    }
    return render(
        request,
        "ui/campaigns/form.html",
        _form_context(session, user=user, campaign=None, values=values, error=None),
    )


@router.get("/campaigns/model-fields")
def model_fields(request: Request, user: UiUser, model: str = "contact") -> Response:
    """The form fields that depend on the target model (unicity field, filter), for htmx."""
    try:
        mdef = REGISTRY.target(model)
    except LookupError:
        mdef = REGISTRY.target("contact")
    values = {"model": mdef.name, "unicity_field": mdef.default_unicity_field, "domain": "[]"}
    return render(
        request,
        "ui/campaigns/_model_fields.html",
        {
            "values": values,
            "unicity_choices": _unicity_choices(mdef.name),
            "form_model": mdef.name,
            "error": None,
            "can_write": True,
        },
    )


def _submitted(
    name: str,
    model: str,
    unicity_field: str,
    include_archived: str | None,
    responsible_id: str,
    filter_text: str,
) -> tuple[dict[str, Any], NurtureError | None]:
    """The form's values as typed (kept on error) and the first input error."""
    values: dict[str, Any] = {
        "name": name,
        "model": model,
        "domain": filter_text or "[]",
        "unicity_field": unicity_field,
        "include_archived": include_archived is not None,
        "responsible_id": None,
    }
    error: NurtureError | None = None
    if responsible_id.strip():
        try:
            values["responsible_id"] = int(responsible_id)
        except ValueError:
            error = ValidationError("choose a user from the list", field="responsible_id")
    # the domain text goes to the service as it is: it reads JSON (and Odoo literals) and
    # names the problem
    values["parsed_domain"] = values["domain"]
    return values, error


def _field_of(error: NurtureError) -> NurtureError:
    """Service errors name ``domain`` (a filter error: the path at fault); the form's field
    is ``filter``."""
    if error.field == "domain" or error.code == "invalid_filter":
        return NurtureError(error.message, field="filter")
    return error


Fields = tuple[str, str, str, str | None, str, str]


def _form_fields(
    name: Annotated[str, Form(max_length=1000)] = "",
    model: Annotated[str, Form(max_length=64)] = "contact",
    unicity_field: Annotated[str, Form(max_length=64)] = "",
    include_archived: Annotated[str | None, Form()] = None,
    responsible_id: Annotated[str, Form(max_length=20)] = "",
    filter: Annotated[str, Form(max_length=100_000)] = "[]",
) -> Fields:
    return name, model, unicity_field, include_archived, responsible_id, filter


FormFields = Annotated[Fields, Depends(_form_fields)]


def _render_invalid(
    request: Request, user: CurrentUser, campaign_id: int | None, values: dict[str, Any], error: NurtureError
) -> Response:
    with database(request).read() as s:
        campaign = (
            campaigns.get_campaign(session=s, campaign_id=campaign_id) if campaign_id else None
        )
        return render(
            request,
            "ui/campaigns/form.html",
            _form_context(s, user=user, campaign=campaign, values=values, error=_field_of(error)),
            status_code=422,
        )


@router.post("/campaigns/new")
def create(request: Request, user: Writer, now: Now, fields: FormFields) -> Response:
    values, error = _submitted(*fields)
    if error is None:
        try:
            with database(request).transaction() as s:
                campaign = campaigns.create_campaign(
                    session=s,
                    now=now,
                    name=values["name"],
                    model=values["model"],
                    domain=values["parsed_domain"],
                    unicity_field=values["unicity_field"] or None,
                    include_archived=values["include_archived"],
                    responsible_id=values["responsible_id"],
                )
                audit(s, user, "campaign.create", campaign, {"name": campaign.name}, now=now, request=request)
                campaign_id = campaign.id
        except NurtureError as exc:
            error = exc
    if error is not None:
        return _render_invalid(request, user, None, values, error)
    return redirect(request, f"/campaigns/{campaign_id}", "The campaign was created.")


@router.get("/campaigns/{campaign_id}")
def form(request: Request, user: UiUser, session: UiReadSession, campaign_id: int) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    return render(
        request,
        "ui/campaigns/form.html",
        _form_context(session, user=user, campaign=campaign, values=_values_of(campaign), error=None),
    )


@router.post("/campaigns/{campaign_id}")
def save(request: Request, user: Writer, now: Now, campaign_id: int, fields: FormFields) -> Response:
    values, error = _submitted(*fields)
    if error is None:
        try:
            with database(request).transaction() as s:
                current = campaigns.get_campaign(session=s, campaign_id=campaign_id)
                changes: dict[str, Any] = {
                    "name": values["name"],
                    "domain": values["parsed_domain"],
                    "include_archived": values["include_archived"],
                    "responsible_id": values["responsible_id"],
                }
                if values["model"] != current.model:
                    changes["model"] = values["model"]
                if values["unicity_field"]:
                    changes["unicity_field"] = values["unicity_field"]
                campaign_changes.edit_campaign(session=s, now=now, campaign_id=campaign_id, **changes)
        except NurtureError as exc:
            error = exc
    if error is not None:
        return _render_invalid(request, user, campaign_id, values, error)
    return redirect(request, f"/campaigns/{campaign_id}", "Saved.")


# --- header buttons ------------------------------------------------------------------------


def _transition(verb: str, done: str, operation: Callable[..., Campaign]) -> None:
    def route(request: Request, user: Writer, now: Now, campaign_id: int) -> Response:
        try:
            with database(request).transaction() as s:
                campaign = operation(session=s, now=now, campaign_id=campaign_id)
                audit(
                    s, user, f"campaign.{verb}", campaign,
                    {"name": campaign.name, "state": campaign.state}, now=now, request=request,
                )
        except NurtureError as exc:
            if exc.field == "campaign_id":
                raise
            return redirect(request, f"/campaigns/{campaign_id}", exc.message, "error")
        return redirect(request, f"/campaigns/{campaign_id}", done)

    route.__name__ = f"{verb}_campaign"
    router.post(f"/campaigns/{{campaign_id}}/{verb}")(route)


_transition("start", "The campaign is running: matching records are enrolled within seconds.", campaigns.start_campaign)
_transition("stop", "The campaign is stopped; scheduled steps wait until it starts again.", campaigns.stop_campaign)
_transition("update", "The workflow changes were applied to the existing participants.", campaign_changes.update_campaign)


@router.post("/campaigns/{campaign_id}/duplicate")
def duplicate(request: Request, user: Writer, now: Now, campaign_id: int) -> Response:
    with database(request).transaction() as s:
        copy = campaigns.duplicate_campaign(session=s, now=now, campaign_id=campaign_id)
        audit(s, user, "campaign.duplicate", copy, {"from": campaign_id}, now=now, request=request)
        copy_id = copy.id
    return redirect(request, f"/campaigns/{copy_id}", "This is the copy, in New: edit it and start it when ready.")


@router.post("/campaigns/{campaign_id}/delete")
def delete(request: Request, user: Writer, now: Now, campaign_id: int) -> Response:
    with database(request).transaction() as s:
        campaign = campaigns.get_campaign(session=s, campaign_id=campaign_id)
        name = campaign.name
        campaign_changes.delete_campaign(session=s, now=now, campaign_id=campaign_id)
        audit(s, user, "campaign.delete", ("campaign", campaign_id), {"name": name}, now=now, request=request)
    return redirect(request, "/campaigns", f"“{name}” was deleted.")


# --- lists behind the smart counters -------------------------------------------------------


def _sub_page(session: Session, campaign_id: int, label: str) -> dict[str, Any]:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    return {
        "campaign": campaign,
        "breadcrumbs": [
            ("Campaigns", "/campaigns"),
            (campaign.name, f"/campaigns/{campaign.id}"),
            (label, None),
        ],
    }


@router.get("/campaigns/{campaign_id}/clicks")
def clicks(request: Request, user: UiUser, session: UiReadSession, campaign_id: int) -> Response:
    context = _sub_page(session, campaign_id, "Clicks")
    links = campaign_stats.link_stats(session, campaign_id=campaign_id, include_tests=False)
    recent = campaign_stats.recent_clicks(session, campaign_id=campaign_id, limit=50)
    context.update(links=[link for link in links if link.clicks], recent=recent)
    return render(request, "ui/campaigns/clicks.html", context)


@router.get("/campaigns/{campaign_id}/templates")
def templates(request: Request, user: UiUser, session: UiReadSession, campaign_id: int) -> Response:
    context = _sub_page(session, campaign_id, "Templates")
    context["templates"] = campaign_stats.campaign_templates(session, campaign_id=campaign_id)
    return render(request, "ui/campaigns/templates.html", context)

