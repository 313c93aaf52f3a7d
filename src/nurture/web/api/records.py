"""Business records of every registered model: ``/api/v1/records/{model}``.

Generic over the model registry: a newly registered model is served without further code.
Values are the record services' (many2one as the related id, to-many as lists of ids);
lists are filtered with the filter language (``?filter=`` as JSON or Odoo text). CSV import
and export are in :mod:`.record_files`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from nurture import audience
from nurture.clock import parse_iso
from nurture.errors import NotFound
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef
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
    WriteSession,
    check,
    get_db,
    paginate,
    utc_values,
)
from nurture.web.security.auth import CurrentUser, current_user

#: models served here; users have their own admin-only routes
EXCLUDED_MODELS = frozenset({"user"})
#: permission resource of each model (default "records")
RESOURCE_OF_MODEL = {"tag": "tags", "mailing_list": "lists", "mailing_subscription": "lists"}
MAX_FILTER = 20_000

Record = dict[str, Any]


def served_models() -> list[str]:
    return [name for name in REGISTRY.models if name not in EXCLUDED_MODELS]


def target_models() -> list[str]:
    return [m.name for m in REGISTRY.targets()]


ModelName = Annotated[
    str,
    PathParam(
        description="A registered model (contact, lead, mailing_contact, …).",
        json_schema_extra={"enum": served_models()},
    ),
]
TargetName = Annotated[
    str,
    PathParam(
        description="A campaign target model.", json_schema_extra={"enum": target_models()}
    ),
]
FilterParam = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=MAX_FILTER,
        description=(
            'A domain as JSON (`[["email", "ilike", "@example.com"]]`) or Odoo text '
            "(`[('email', '!=', False)]`)."
        ),
    ),
]
IncludeArchived = Annotated[
    bool, Query(description="Also list archived records (active = false).")
]
User = Annotated[CurrentUser, Depends(current_user)]

router = APIRouter(prefix="/records", tags=["records"], responses={**AUTH_ERRORS, **NOT_FOUND})


def resolve_model(name: str, user: CurrentUser, verb: str) -> ModelDef:
    """The registered model ``name`` after checking ``user`` may ``verb`` it (404 / 403)."""
    if name in EXCLUDED_MODELS or name not in REGISTRY.models:
        raise NotFound(
            f"unknown model {name!r} (known: {', '.join(served_models())})", field="model"
        )
    check(user, f"{RESOURCE_OF_MODEL.get(name, 'records')}.{verb}")
    return REGISTRY.get(name)


def resolve_target(name: str, user: CurrentUser, verb: str) -> ModelDef:
    mdef = resolve_model(name, user, verb)
    if not mdef.is_target:
        raise NotFound(
            f"{name!r} is not a campaign target (targets: {', '.join(target_models())})",
            field="model",
        )
    return mdef


def _access(verb: str, *, target: bool = False) -> Any:
    """A dependency resolving the ``{model}`` path parameter and checking the role, so a
    refused call is a 403 before its body is even looked at."""
    if target:

        def target_dependency(model: TargetName, user: User) -> ModelDef:
            return resolve_target(model, user, verb)

        return target_dependency

    def dependency(model: ModelName, user: User) -> ModelDef:
        return resolve_model(model, user, verb)

    return dependency


ReadModel = Annotated[ModelDef, Depends(_access("read"))]
WriteModel = Annotated[ModelDef, Depends(_access("write"))]
ReadTarget = Annotated[ModelDef, Depends(_access("read", target=True))]
WriteTarget = Annotated[ModelDef, Depends(_access("write", target=True))]


# --------------------------------------------------------------------------- helpers


def read_many(session: Session, mdef: ModelDef, ids: list[int]) -> list[Record]:
    """Records as the record service reads them, loading to-many relations in one pass."""
    if not ids:
        return []
    loaders = [selectinload(getattr(mdef.orm, f.name)) for f in mdef.fields.values() if f.is_to_many]
    session.scalars(select(mdef.orm).where(mdef.orm.id.in_(ids)).options(*loaders)).all()
    return [utc_values(records.read_record(session=session, model=mdef, record_id=i)) for i in ids]


def from_json(mdef: ModelDef, values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no date type: ISO-8601 text for a datetime field becomes a datetime."""
    out = dict(values)
    for key, value in values.items():
        fdef = mdef.fields.get(key)
        if fdef is not None and fdef.type == "datetime" and isinstance(value, str):
            try:
                out[key] = parse_iso(value.strip())
            except ValueError:
                pass  # the record service names the field and the expected format
    return out


def read_one(session: Session, mdef: ModelDef, record_id: int) -> Record:
    return utc_values(records.read_record(session=session, model=mdef, record_id=record_id))


def list_records(
    session: Session,
    mdef: ModelDef,
    *,
    now: Any,
    domain: str | list[Any] | None,
    include_archived: bool,
    limit: int,
    cursor: str | None,
    offset: int | None,
    with_total: bool,
) -> Page[Record]:
    condition = audience.compile_domain(mdef.name, domain, now=now)
    active = audience.active_condition(mdef.name, include_archived=include_archived)
    stmt = select(mdef.orm).where(condition, active)
    rows, next_cursor = paginate(
        session, stmt, mdef.orm.id, limit=limit, cursor=cursor, offset=offset
    )
    total = None
    if with_total:
        total = int(
            session.scalar(select(func.count()).select_from(mdef.orm).where(condition, active))
            or 0
        )
    items = read_many(session, mdef, [int(r.id) for r in rows])
    return Page[Record](items=items, next_cursor=next_cursor, total=total)


def empty_filter(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value


# --------------------------------------------------------------------------- schemas


class CountResult(BaseModel):
    model: str
    count: int = Field(description="Records matching the filter (#records).")


class FieldInfo(BaseModel):
    name: str
    label: str
    type: str
    relation: str | None = None
    operators: list[str]
    selection: list[str]
    readonly: bool = Field(
        False, description="Set by Nurture; refused by create and update, skipped by imports."
    )
    computed: bool = Field(
        False, description="No stored value: computed when filtering (e.g. is_blacklisted)."
    )


#: the CSV import's report (routes in .record_files); declared here, its OpenAPI name is
#: ``nurture__web__api__records__ImportReport`` (blacklists has an ImportReport too)
class RowErrorOut(BaseModel):
    line: int = Field(description="Line of the file where the row starts (header: line 1).")
    field: str | None
    message: str


class ImportReport(BaseModel):
    model: str
    rows: int
    created: int
    updated: int
    error_count: int
    errors: list[RowErrorOut] = Field(description="The first 1000 row errors.")
    ignored_columns: list[str]
    unknown_columns: list[str] = Field(
        default_factory=list,
        description="Columns that match no field: the rest of the file was imported without "
        "them (map them to a field to import them).",
    )


class RecordIds(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] = Field(min_length=1, max_length=1000)


# --------------------------------------------------------------------------- routes


@router.get("/{model}", summary="List records (filtered, paginated)")
def list_route(
    mdef: ReadModel,
    session: ReadSession,
    now: Now,
    filter_: FilterParam = None,
    include_archived: IncludeArchived = False,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
    with_total: Annotated[bool, Query(description="Also count all matching rows.")] = False,
) -> Page[Record]:
    return list_records(
        session,
        mdef,
        now=now,
        domain=empty_filter(filter_),
        include_archived=include_archived,
        limit=limit,
        cursor=cursor,
        offset=offset,
        with_total=with_total,
    )


@router.post("/{model}", status_code=201, summary="Create a record", responses=CONFLICT)
def create_route(
    mdef: WriteModel,
    session: WriteSession,
    now: Now,
    values: Annotated[
        dict[str, Any],
        Body(description="Field values; many2one as an id, to-many as ids (tags also by name)."),
    ],
) -> Record:
    record_id = records.create_record(
        session=session, model=mdef, values=from_json(mdef, values), now=now
    )
    return read_one(session, mdef, record_id)


@router.get("/{model}/count", summary="Count the records matching a filter (#records)")
def count_route(
    mdef: ReadModel,
    session: ReadSession,
    now: Now,
    filter_: FilterParam = None,
    include_archived: IncludeArchived = False,
) -> CountResult:
    count = audience.count_matching(
        session, mdef.name, empty_filter(filter_), now=now, include_archived=include_archived
    )
    return CountResult(model=mdef.name, count=count)


@router.get("/{model}/fields", summary="Fields the filter editor offers for a model")
def fields_route(mdef: ReadModel) -> list[FieldInfo]:
    return [FieldInfo(**entry) for entry in audience.fields_for_ui(mdef.name)]


@router.post("/{model}/archive", summary="Archive several records", status_code=204)
def archive_many_route(
    mdef: WriteModel, session: WriteSession, now: Now, body: RecordIds
) -> Response:
    records.archive_records(session=session, model=mdef, ids=body.ids, now=now)
    return Response(status_code=204)


@router.get("/{model}/{record_id}", summary="Get one record")
def get_route(mdef: ReadModel, record_id: Id, session: ReadSession) -> Record:
    return read_one(session, mdef, record_id)


@router.patch("/{model}/{record_id}", summary="Change fields of a record", responses=CONFLICT)
def patch_route(
    mdef: WriteModel,
    record_id: Id,
    session: WriteSession,
    now: Now,
    values: Annotated[dict[str, Any], Body(description="The fields to change.")],
) -> Record:
    records.update_record(
        session=session, model=mdef, record_id=record_id, values=from_json(mdef, values), now=now
    )
    return read_one(session, mdef, record_id)


@router.delete(
    "/{model}/{record_id}", status_code=204, summary="Delete a record", responses=CONFLICT
)
def delete_route(
    mdef: WriteModel, record_id: Id, session: WriteSession, now: Now
) -> Response:
    records.delete_records(session=session, model=mdef, ids=[record_id], now=now)
    return Response(status_code=204)


@router.post("/{model}/{record_id}/archive", summary="Archive a record")
def archive_route(
    mdef: WriteModel, record_id: Id, session: WriteSession, now: Now
) -> Record:
    records.archive_records(session=session, model=mdef, ids=[record_id], now=now)
    return read_one(session, mdef, record_id)


@router.post("/{model}/{record_id}/unarchive", summary="Restore an archived record")
def unarchive_route(
    mdef: WriteModel, record_id: Id, session: WriteSession, now: Now
) -> Record:
    records.unarchive_records(session=session, model=mdef, ids=[record_id], now=now)
    return read_one(session, mdef, record_id)


__all__ = ["ReadModel", "WriteModel", "get_db", "list_records", "read_many", "router"]
