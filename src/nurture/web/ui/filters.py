"""Web UI: the filter builder's server side (issue 14, screen 4) and the Filter explorer page.

The builder itself is the macro ``filter_builder`` in ``ui/filters/_builder.html``; its
behaviour is ``static/ui-filter.js``, which draws the rule tree in the browser and asks
these routes (all under ``/ui/filters/{model}``, POST ones with the CSRF header):

* ``GET  fields?path=tags`` — the fields a rule may test at the end of a relation path;
* ``POST tree`` (``domain``) — the checked, canonical domain of code-view text (JSON or
  Odoo literal) and its editor tree, or the validator's error naming the problem;
* ``POST count`` (``domain``, ``base_domain``, ``include_archived``) — #records;
* ``POST records`` (same) — an HTML fragment listing the newest matching records;
* ``GET  related?path=tags&q=vi`` (or ``&ids=1,2``) — records of a related model to pick.

Everything is answered by :mod:`nurture.audience`; this module only reads the request and
shapes the answer. Errors are JSON ``{"error": {"message", "field"}}`` with status 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from nurture import audience
from nurture.audience import FilterError
from nurture.audience.listing import list_page
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, RegistryError
from nurture.web.api.common import Now
from nurture.web.api.records import EXCLUDED_MODELS, RESOURCE_OF_MODEL
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import FieldError, UiReadSession, UiUser, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

MAX_DOMAIN = 20_000
RECORDS_SHOWN = 20  # in the selected-records dialog
EXPLORER_FIELD = "filter"

DomainText = Annotated[str, Form(max_length=MAX_DOMAIN)]
BaseDomainText = Annotated[str, Form(max_length=MAX_DOMAIN)]


def _target(model: str) -> ModelDef:
    try:
        return REGISTRY.target(model)
    except RegistryError:
        raise HTTPException(status_code=404, detail="not found") from None


def _error(exc: FilterError) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": exc.message, "field": exc.field}},
        status_code=422,
        headers={"Cache-Control": "no-store"},
    )


def _json(payload: Any) -> JSONResponse:
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


def _combined(mdef: ModelDef, asked: Selection) -> list[Any]:
    """The builder's domain (checked first, so that its error names its own rule) AND the
    caller's base domain."""
    checked = audience.validate_domain(mdef.name, asked.domain)
    return audience.and_domains(asked.base_domain or None, checked)


# --- the Filter explorer page --------------------------------------------------------------


@router.get("/filters/{model}")
def explorer(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    now: Now,
    model: str,
    filter_: Annotated[str, Query(alias="filter", max_length=MAX_DOMAIN)] = "[]",
) -> Response:
    """Explore a filter over a target model: the builder, #records and the records."""
    mdef = _target(model)
    error: FieldError | None = None
    count: int | None = None
    try:
        count = audience.count_matching(session, mdef.name, filter_, now=now)
    except FilterError as exc:
        error = FieldError(field=EXPLORER_FIELD, message=exc.message)
    return render(
        request,
        "ui/filters/explorer.html",
        {
            "mdef": mdef,
            "targets": REGISTRY.targets(),
            "domain": filter_,
            "count": count,
            "error": error,
            "field_name": EXPLORER_FIELD,
            "breadcrumbs": [("Filter explorer", "/filters/contact"), (mdef.label, None)],
        },
        status_code=422 if error else 200,
    )


# --- the builder's questions ---------------------------------------------------------------


@router.get("/ui/filters/{model}/fields")
def fields(
    user: UiUser, model: str, path: Annotated[str, Query(max_length=500)] = ""
) -> Response:
    mdef = _target(model)
    try:
        target, entries = audience.fields_at(mdef.name, path)
    except FilterError as exc:
        return _error(exc)
    return _json({"model": target.name, "label": target.label, "path": path, "fields": entries})


@router.post("/ui/filters/{model}/tree")
def tree(user: UiUser, model: str, domain: DomainText = "[]") -> Response:
    mdef = _target(model)
    try:
        checked = audience.validate_domain(mdef.name, domain)
    except FilterError as exc:
        return _error(exc)
    return _json({"domain": checked, "tree": audience.domain_to_tree(checked)})


@dataclass(frozen=True)
class Selection:
    """What #records and the records dialog are asked about: the builder's domain, the
    caller's base domain (ANDed) and whether archived records count."""

    domain: str
    base_domain: str
    include_archived: bool


def _selection(
    domain: DomainText = "[]",
    base_domain: BaseDomainText = "",
    include_archived: Annotated[bool, Form()] = False,
) -> Selection:
    return Selection(domain, base_domain, include_archived)


SelectionForm = Annotated[Selection, Depends(_selection)]


@router.post("/ui/filters/{model}/count")
def count(
    user: UiUser, session: UiReadSession, now: Now, model: str, asked: SelectionForm
) -> Response:
    mdef = _target(model)
    try:
        combined = _combined(mdef, asked)
        matched = audience.count_matching(
            session, mdef.name, combined, now=now, include_archived=asked.include_archived
        )
    except FilterError as exc:
        return _error(exc)
    return _json({"count": matched})


@router.post("/ui/filters/{model}/records")
def records(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    now: Now,
    model: str,
    asked: SelectionForm,
) -> Response:
    mdef = _target(model)
    try:
        combined = _combined(mdef, asked)
        page = list_page(
            session,
            model=mdef.name,
            now=now,
            domain=combined,
            limit=RECORDS_SHOWN,
            include_archived=asked.include_archived,
        )
    except FilterError as exc:
        return _error(exc)
    return render(request, "ui/filters/_records.html", {"mdef": mdef, "page": page})


def _may_list(user: CurrentUser, target: ModelDef) -> bool:
    """Picking related records lists them: the role must be allowed to read that model
    (users are administrators' business, like ``/api/v1/users``)."""
    resource = RESOURCE_OF_MODEL.get(target.name, "records")
    if target.name in EXCLUDED_MODELS:
        resource = "users"
    return user.can(f"{resource}.read")


@router.get("/ui/filters/{model}/related")
def related(
    user: UiUser,
    session: UiReadSession,
    now: Now,
    model: str,
    path: Annotated[str, Query(max_length=500)],
    q: Annotated[str, Query(max_length=200)] = "",
    ids: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    mdef = _target(model)
    try:
        wanted = [int(i) for i in ids.split(",") if i.strip()] if ids is not None else None
    except ValueError:
        return _error(FilterError("ids must be whole numbers separated by commas", field="ids"))
    try:
        target = audience.relation_model(mdef.name, path)
        if not _may_list(user, target):
            message = f"your role ({user.role}) may not list {target.label.lower()} records"
            return JSONResponse({"error": {"message": message, "field": path}}, status_code=403)
        choices = audience.related_choices(
            session, model=mdef.name, path=path, query=q, ids=wanted, now=now
        )
    except FilterError as exc:
        return _error(exc)
    return _json([{"id": c.id, "label": c.label, "detail": c.detail} for c in choices])
