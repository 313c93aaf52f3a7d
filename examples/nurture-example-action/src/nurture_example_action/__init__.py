"""Example Nurture action plugin: tag each record with its email domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.actions.base import ActionFailed, payload_of, run_per_record
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import service as records
from nurture.records.catalog import REGISTRY


class TagDomainAction:
    name = "example_tag_domain"
    label = "Tag with email domain (example plugin)"

    def validate_payload(self, model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        mdef = REGISTRY.get(model)
        if not mdef.email_field:
            raise ValidationError(f"{mdef.label} records have no email address", field="model")
        tags = mdef.fields.get("tags")
        if tags is None or tags.relation != "tag":
            raise ValidationError(f"{mdef.label} records have no tags", field="model")
        unknown = set(payload) - {"prefix"}
        if unknown:
            raise ValidationError(f"unknown payload key {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        prefix = payload.get("prefix", "domain:")
        if not isinstance(prefix, str) or len(prefix) > 40:
            raise ValidationError("prefix takes text (at most 40 characters)", field="prefix")
        return {"prefix": prefix}

    def run(self, batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]:
        prefix = str(payload_of(action).get("prefix", "domain:"))
        email_field = REGISTRY.get(action.model).email_field or "email"

        def step(record: Any, trace: DueTrace) -> None:
            email = getattr(record, email_field, None)
            if not email or "@" not in email:
                raise ActionFailed("no email address")
            domain = email.rsplit("@", 1)[1]
            records.add_tags(
                session=batch.session, model=action.model, ids=[record.id],
                names=[f"{prefix}{domain}"], now=batch.now,
            )

        return run_per_record(batch, action, step)


action = TagDomainAction()
