"""The filter language for API clients: check a filter, convert it between the domain and
the editor's tree, and count what it matches (``/api/v1/filters/{model}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from nurture import audience
from nurture.errors import ValidationError
from nurture.web.api.common import AUTH_ERRORS, NOT_FOUND, Now, ReadSession
from nurture.web.api.records import ReadModel

router = APIRouter(prefix="/filters", tags=["filters"], responses={**AUTH_ERRORS, **NOT_FOUND})


class FilterIn(BaseModel):
    domain: list[Any] | str | None = Field(
        default=None, description="A domain (JSON list, or JSON / Odoo text)."
    )
    tree: dict[str, Any] | None = Field(
        default=None, description="Or the editor's tree (give one of domain and tree)."
    )
    include_archived: bool = False


class FilterOut(BaseModel):
    domain: list[Any] = Field(description="The canonical domain.")
    tree: dict[str, Any] = Field(description="The same filter as the editor's tree.")
    count: int = Field(description="Records matching it now (#records).")


@router.post("/{model}", summary="Check a filter, convert domain ↔ tree, count matches")
def check_filter(
    mdef: ReadModel, session: ReadSession, now: Now, body: FilterIn
) -> FilterOut:
    if body.domain is not None and body.tree is not None:
        raise ValidationError("give either domain or tree, not both", field="tree")
    source: Any = audience.tree_to_domain(body.tree) if body.tree is not None else body.domain
    domain = audience.validate_domain(mdef.name, source)
    count = audience.count_matching(
        session, mdef.name, domain, now=now, include_archived=body.include_archived
    )
    return FilterOut(domain=domain, tree=audience.domain_to_tree(domain), count=count)
