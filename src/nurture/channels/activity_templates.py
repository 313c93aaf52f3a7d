"""The message template of a channel's activities, the same rules for every channel.

A template belongs to one activity of its channel's type (``activity_id`` unique; the
campaign's model is its model) or stands alone (``activity_id`` NULL, a target model
given). :class:`ActivityTemplates` stores, validates, replaces, copies (campaign
duplication), deletes and compiles them; the channel supplies its table, its content
fields, their coercion and the save-time validation (:class:`TemplateRules`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.campaigns import on_activity_duplicated
from nurture.campaigns.models import Activity, Campaign
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import service as records
from nurture.records.catalog import REGISTRY


class TemplateRow(Protocol):
    """The columns every channel's template table has."""

    id: Any
    name: Any
    model: Any
    campaign_id: Any
    activity_id: Any
    created_at: Any
    updated_at: Any


M = TypeVar("M", bound=TemplateRow)
C = TypeVar("C")


def _keep(key: str, value: Any) -> Any:
    return value


@dataclass(frozen=True)
class TemplateRules(Generic[M]):
    """What differs between the channels' templates."""

    orm: type[M]
    #: the activity type whose activities have this template (``email``, ``sms``)
    activity_type: str
    #: how messages name the channel ("email", "SMS")
    label: str
    #: the content columns (copied on duplication) and the other editable ones
    content: tuple[str, ...]
    #: save-time validation (may normalise the row); raises on a bad template
    validate: Callable[[Session, M], object]
    #: an update's value for a column
    coerce: Callable[[str, Any], Any] = _keep


class ActivityTemplates(Generic[M]):
    """The template service of one channel (see the module doc)."""

    def __init__(self, rules: TemplateRules[M]) -> None:
        self.rules = rules
        on_activity_duplicated(self.copy)

    def create(
        self,
        *,
        session: Session,
        now: datetime,
        activity_id: int | None,
        model: str | None,
        name: str | None,
        default_name: str,
        **content: Any,
    ) -> M:
        """A template for an activity (``activity_id``) or standalone (``model``);
        ``name`` defaults to the activity's name, else ``default_name``. Validated before
        it is stored."""
        rules = self.rules
        campaign_id: int | None = None
        if activity_id is not None:
            activity = session.get(Activity, activity_id)
            if activity is None:
                raise NotFound(f"no activity with id {activity_id}", field="activity_id")
            if activity.activity_type != rules.activity_type:
                raise ValidationError(
                    f"only {rules.label} activities have an {rules.label} template", field="activity_id"
                )
            if session.scalar(select(rules.orm.id).where(rules.orm.activity_id == activity_id)):
                raise Conflict(f"this activity already has an {rules.label} template", field="activity_id")
            campaign = session.get(Campaign, activity.campaign_id)
            assert campaign is not None
            campaign_id, model = campaign.id, campaign.model
            name = name or activity.name
        if model is None:
            raise ValidationError("a target model is required for a standalone template", field="model")
        REGISTRY.target(model)
        make: Callable[..., M] = rules.orm
        template = make(
            name=(name or default_name)[:200],
            model=model,
            campaign_id=campaign_id,
            activity_id=activity_id,
            created_at=now,
            updated_at=now,
            **content,
        )
        rules.validate(session, template)
        session.add(template)
        session.flush()
        return template

    def get(self, *, session: Session, template_id: int) -> M:
        template = session.get(self.rules.orm, template_id)
        if template is None:
            raise NotFound(f"no {self.rules.label} template with id {template_id}", field="template_id")
        return template

    def for_activity(self, *, session: Session, activity_id: int) -> M | None:
        orm = self.rules.orm
        found: M | None = session.scalar(select(orm).where(orm.activity_id == activity_id))
        return found

    def update(self, *, session: Session, now: datetime, template_id: int, **changes: Any) -> M:
        template = self.get(session=session, template_id=template_id)
        unknown = set(changes) - {"name", *self.rules.content}
        if unknown:
            raise ValidationError(f"unknown template field(s): {sorted(unknown)}", field=sorted(unknown)[0])
        for key, value in changes.items():
            setattr(template, key, self.rules.coerce(key, value))
        self.rules.validate(session, template)
        template.updated_at = now
        session.flush()
        return template

    def set_for_activity(
        self,
        *,
        session: Session,
        now: datetime,
        activity_id: int,
        name: str | None,
        create: Callable[..., M],
        **content: Any,
    ) -> M:
        """Create (``create``: the channel's create function, with its defaults) or replace
        the template of activity ``activity_id``; validated before anything is written."""
        existing = self.for_activity(session=session, activity_id=activity_id)
        if existing is None:
            return create(session=session, now=now, activity_id=activity_id, name=name, **content)
        activity = session.get(Activity, activity_id)
        assert activity is not None
        return self.update(
            session=session, now=now, template_id=existing.id, name=(name or activity.name)[:200], **content
        )

    def copy(self, session: Session, original: Activity, copy: Activity, now: datetime) -> None:
        """Campaign duplication: the copied activity gets a copy of its template."""
        template = self.for_activity(session=session, activity_id=original.id)
        if template is None:
            return
        make: Callable[..., M] = self.rules.orm
        session.add(
            make(
                name=template.name,
                model=template.model,
                campaign_id=copy.campaign_id,
                activity_id=copy.id,
                created_at=now,
                updated_at=now,
                **{key: getattr(template, key) for key in self.rules.content},
            )
        )
        session.flush()

    def delete(self, *, session: Session, template_id: int) -> None:
        session.delete(self.get(session=session, template_id=template_id))
        session.flush()

    def preview_record(self, *, session: Session, template: M, record_id: int | None) -> Any:
        """The record a preview renders with (any record of the template's model), or None."""
        if record_id is None:
            return None
        return records.get_record(session=session, model=template.model, record_id=record_id)


class CompiledCache(Generic[M, C]):
    """Templates compiled once per version (kept across batches; a small cache)."""

    def __init__(self, compile: Callable[[M], C], source: Callable[[M], str], size: int = 64) -> None:
        self.compile = compile
        self.source = source
        self.size = size
        self._cache: dict[tuple[int, str, datetime, str], C] = {}
        self._lock = threading.Lock()

    def __call__(self, template: M) -> C:
        key = (template.id, template.model, template.updated_at, self.source(template))
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        compiled = self.compile(template)
        with self._lock:
            if len(self._cache) > self.size:
                self._cache.clear()
            self._cache[key] = compiled
        return compiled
