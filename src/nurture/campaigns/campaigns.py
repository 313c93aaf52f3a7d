"""Campaign services (SPEC §3): create, duplicate, start and stop a campaign, count its records.

Every function is keyword-only, takes the ``session`` it writes in and ``now`` (naive UTC),
and raises :mod:`nurture.errors` naming the field at fault; nothing is written on error.
Changes whose rules involve participants and traces (edit, delete, *Update*) are
:mod:`nurture.engine.campaign_changes`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.checks import check_name, check_user, check_whole, target_model
from nurture.campaigns.describe import with_depth
from nurture.campaigns.domains import campaign_domain, clean_domain
from nurture.campaigns.models import Activity, Campaign
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.registry import ModelDef, RegistryError

UNICITY_TYPES = frozenset({"char", "text", "integer", "selection", "many2one"})


#: hooks run when an activity is duplicated (channels copy their templates here)
DuplicateHook = Callable[[Session, Activity, Activity, datetime], None]
_duplicate_hooks: list[DuplicateHook] = []


def on_activity_duplicated(hook: DuplicateHook) -> DuplicateHook:
    """Register ``hook(session, original, copy, now)``, called for each duplicated activity."""
    if hook not in _duplicate_hooks:
        _duplicate_hooks.append(hook)
    return hook


#: hooks run in the transaction that starts a campaign (the engine enrols here)
StartHook = Callable[[Session, Campaign, datetime], None]
_start_hooks: list[StartHook] = []


def on_campaign_started(hook: StartHook) -> StartHook:
    """Register ``hook(session, campaign, now)``, called when a campaign starts running."""
    if hook not in _start_hooks:
        _start_hooks.append(hook)
    return hook


def get_campaign(*, session: Session, campaign_id: int, for_update: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    campaign = session.scalars(stmt).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign_id")
    return campaign


def check_unicity(mdef: ModelDef, unicity_field: str) -> str:
    if unicity_field == "id":
        return "id"
    try:
        fdef = mdef.field(unicity_field)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field="unicity_field") from exc
    if fdef.type not in UNICITY_TYPES:
        raise ValidationError(
            f"unicity field {unicity_field!r} is a {fdef.type} field; use a text, number, "
            "selection or many2one field",
            field="unicity_field",
        )
    return unicity_field


def create_campaign(
    *,
    session: Session,
    now: datetime,
    name: str,
    model: str,
    domain: Any = None,
    unicity_field: str | None = None,
    include_archived: bool = False,
    responsible_id: int | None = None,
    event_window_days: int = 30,
) -> Campaign:
    mdef = target_model(model)
    window = check_whole(event_window_days, "event_window_days")
    if not window:
        raise ValidationError("event window must be at least 1 day", field="event_window_days")
    campaign = Campaign(
        name=check_name(name),
        model=model,
        domain=clean_domain(model, domain, "domain"),
        unicity_field=check_unicity(mdef, unicity_field or mdef.default_unicity_field),
        include_archived=bool(include_archived),
        responsible_id=check_user(session, responsible_id),
        state="draft",
        event_window_days=window,
        workflow_modified=False,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign


def duplicate_campaign(*, session: Session, now: datetime, campaign_id: int) -> Campaign:
    """Copy a campaign with its activity tree (in draft, without participants)."""
    source = get_campaign(session=session, campaign_id=campaign_id)
    copy = Campaign(
        name=f"{source.name} (copy)"[:200],
        model=source.model,
        domain=source.domain,
        unicity_field=source.unicity_field,
        include_archived=source.include_archived,
        responsible_id=source.responsible_id,
        state="draft",
        event_window_days=source.event_window_days,
        workflow_modified=False,
        created_at=now,
        updated_at=now,
    )
    session.add(copy)
    session.flush()
    mapping: dict[int, Activity] = {}
    for activity in _tree_order(list(source.activities)):
        new = Activity(
            campaign_id=copy.id,
            name=activity.name,
            activity_type=activity.activity_type,
            server_action_id=activity.server_action_id,
            trigger_type=activity.trigger_type,
            parent_id=mapping[activity.parent_id].id if activity.parent_id else None,
            interval_number=activity.interval_number,
            interval_unit=activity.interval_unit,
            expiry_number=activity.expiry_number,
            expiry_unit=activity.expiry_unit,
            domain=activity.domain,
            pending_new=False,
            pending_redate=False,
            created_at=now,
            updated_at=now,
        )
        session.add(new)
        session.flush()
        mapping[activity.id] = new
        for hook in list(_duplicate_hooks):
            hook(session, activity, new, now)
    session.refresh(copy)
    return copy


def _tree_order(activities: list[Activity]) -> list[Activity]:
    """Parents before children."""
    return [activity for activity, _depth in with_depth(activities)]


def start_campaign(*, session: Session, now: datetime, campaign_id: int) -> Campaign:
    """draft/stopped → running, and the matching records are enrolled at once, in the same
    transaction (the :func:`on_campaign_started` hooks: the engine's enrolment)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    if campaign.state == "running":
        raise Conflict("the campaign is already running", field="state")
    if not campaign.activities:
        raise ValidationError("add at least one activity before starting", field="activities")
    campaign.state = "running"
    if campaign.started_at is None:
        campaign.started_at = now
    campaign.last_sync_at = None
    campaign.updated_at = now
    session.flush()
    for hook in _start_hooks:
        hook(session, campaign, now)
    return campaign


def stop_campaign(*, session: Session, now: datetime, campaign_id: int) -> Campaign:
    """running → stopped: no enrolment, no execution; scheduled traces are kept."""
    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    if campaign.state != "running":
        raise Conflict("only a running campaign can be stopped", field="state")
    campaign.state = "stopped"
    campaign.updated_at = now
    session.flush()
    return campaign


def campaign_count(session: Session, *, campaign_id: int, now: datetime) -> int:
    """``#records`` of the campaign filter."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    return audience.count_matching(
        session,
        campaign.model,
        campaign_domain(campaign),
        now=now,
        include_archived=campaign.include_archived,
    )
