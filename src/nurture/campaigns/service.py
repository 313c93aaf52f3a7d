"""Campaign and activity services (SPEC §3, §4): one function per state change.

Every function is keyword-only, takes the ``session`` it writes in and ``now`` (naive UTC),
and raises :mod:`nurture.errors` naming the field at fault; nothing is written on error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.describe import with_depth
from nurture.campaigns.models import (
    ACTIVITY_TYPES,
    INTERVAL_UNITS,
    SERVER_ACTION_TYPES,
    TRIGGER_PARENT,
    Activity,
    Campaign,
    ServerAction,
)
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.models import Tag, User
from nurture.records.registry import ModelDef, RegistryError

UNICITY_TYPES = frozenset({"char", "text", "integer", "selection", "many2one"})
_UNSET: Any = object()

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


# --------------------------------------------------------------------------- domains


def and_domains(*domains: Sequence[Any]) -> list[Any]:
    """AND several prefix-notation domains into one (empty domains are dropped)."""
    parts = [_normalise(list(d)) for d in domains if d]
    if not parts:
        return []
    result: list[Any] = ["&"] * (len(parts) - 1)
    for part in parts:
        result.extend(part)
    return result


def _normalise(domain: list[Any]) -> list[Any]:
    """Make the implicit ANDs of adjacent top-level expressions explicit."""
    count = 0
    need = 0
    for token in domain:
        if need == 0:
            count += 1
            need = 1
        if token in ("&", "|"):
            need += 1
        elif token == "!":
            pass
        else:
            need -= 1
    return ["&"] * (count - 1) + domain if count > 1 else domain


def _clean_domain(model: str, domain: Any, field: str) -> str:
    try:
        parsed = audience.parse_domain(domain)
        validated = audience.validate_domain(model, parsed)
    except audience.FilterError as exc:
        # One error shape for filters everywhere (as /records?filter=): invalid_filter,
        # field = the path at fault; the message says which filter it is.
        raise audience.FilterError(f"{field}: {exc.message}", field=exc.field or field) from exc
    except ValidationError as exc:
        raise ValidationError(f"{field}: {exc.message}", field=field) from exc
    return json.dumps(validated)


def campaign_domain(campaign: Campaign) -> list[Any]:
    return list(json.loads(campaign.domain or "[]"))


def activity_domain(activity: Activity) -> list[Any]:
    return list(json.loads(activity.domain or "[]"))


def applied_domain(session: Session, *, activity: Activity) -> list[Any]:
    """Campaign filter AND the activity filters of ``activity`` and all its ancestors."""
    domains: list[list[Any]] = []
    current: Activity | None = activity
    seen: set[int] = set()
    while current is not None and current.id not in seen:
        seen.add(current.id)
        domains.append(activity_domain(current))
        current = session.get(Activity, current.parent_id) if current.parent_id else None
    campaign = session.get(Campaign, activity.campaign_id)
    assert campaign is not None
    return and_domains(campaign_domain(campaign), *reversed(domains))


def applied_count(session: Session, *, activity_id: int, now: datetime) -> int:
    """``#records`` of an activity's applied filter (live count)."""
    activity = get_activity(session=session, activity_id=activity_id)
    campaign = activity.campaign
    return audience.count_matching(
        session,
        campaign.model,
        applied_domain(session, activity=activity),
        now=now,
        include_archived=campaign.include_archived,
    )


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


# --------------------------------------------------------------------------- campaigns


def get_campaign(*, session: Session, campaign_id: int, for_update: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    campaign = session.scalars(stmt).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign_id")
    return campaign


def _target(model: str) -> ModelDef:
    try:
        return REGISTRY.target(model)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field="model") from exc


def _check_unicity(mdef: ModelDef, unicity_field: str) -> str:
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


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError("name is required", field="name")
    if len(name) > 200:
        raise ValidationError("name is longer than 200 characters", field="name")
    return name


def _check_user(session: Session, user_id: int | None) -> int | None:
    if user_id is not None and session.get(User, user_id) is None:
        raise ValidationError(f"user {user_id} does not exist", field="responsible_id")
    return user_id


def _check_whole(value: Any, field: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field} must be a whole number ≥ 0", field=field)
    return value


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
    mdef = _target(model)
    window = _check_whole(event_window_days, "event_window_days")
    if not window:
        raise ValidationError("event window must be at least 1 day", field="event_window_days")
    campaign = Campaign(
        name=_check_name(name),
        model=model,
        domain=_clean_domain(model, domain, "domain"),
        unicity_field=_check_unicity(mdef, unicity_field or mdef.default_unicity_field),
        include_archived=bool(include_archived),
        responsible_id=_check_user(session, responsible_id),
        state="draft",
        event_window_days=window,
        workflow_modified=False,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign


def edit_campaign(
    *,
    session: Session,
    now: datetime,
    campaign_id: int,
    name: str = _UNSET,
    model: str = _UNSET,
    domain: Any = _UNSET,
    unicity_field: str = _UNSET,
    include_archived: bool = _UNSET,
    responsible_id: int | None = _UNSET,
    event_window_days: int = _UNSET,
) -> Campaign:
    """Change a campaign's fields; only the ones passed are touched."""
    from nurture.engine.models import Participant

    campaign = get_campaign(session=session, campaign_id=campaign_id)
    if name is not _UNSET:
        campaign.name = _check_name(name)
    if model is not _UNSET and model != campaign.model:
        mdef = _target(model)
        has_participants = session.scalar(
            select(Participant.id).where(Participant.campaign_id == campaign.id).limit(1)
        )
        if campaign.state != "draft" or has_participants:
            raise Conflict(
                "the target model cannot change once the campaign has started", field="model"
            )
        if campaign.activities:
            raise Conflict("remove the activities before changing the target model", field="model")
        campaign.model = model
        campaign.unicity_field = mdef.default_unicity_field
        if domain is _UNSET:
            campaign.domain = "[]"
    mdef = _target(campaign.model)
    if domain is not _UNSET:
        campaign.domain = _clean_domain(campaign.model, domain, "domain")
    if unicity_field is not _UNSET:
        new_unicity = _check_unicity(mdef, unicity_field or mdef.default_unicity_field)
        if new_unicity != campaign.unicity_field:
            enrolled = session.scalar(
                select(Participant.id)
                .where(Participant.campaign_id == campaign.id, Participant.is_test.is_(False))
                .limit(1)
            )
            if enrolled:
                raise Conflict(
                    "the unicity field cannot change once records are enrolled",
                    field="unicity_field",
                )
        campaign.unicity_field = new_unicity
    if include_archived is not _UNSET:
        campaign.include_archived = bool(include_archived)
    if responsible_id is not _UNSET:
        campaign.responsible_id = _check_user(session, responsible_id)
    if event_window_days is not _UNSET:
        window = _check_whole(event_window_days, "event_window_days")
        if not window:
            raise ValidationError("event window must be at least 1 day", field="event_window_days")
        campaign.event_window_days = window
    campaign.updated_at = now
    session.flush()
    return campaign


def delete_campaign(*, session: Session, now: datetime, campaign_id: int) -> None:
    """Delete a campaign with its activities, participants and traces."""
    from nurture.engine.models import Participant, Trace

    campaign = get_campaign(session=session, campaign_id=campaign_id)
    # Explicit deletes in dependency order: fast on large campaigns, no ORM loading.
    session.execute(delete(Trace).where(Trace.campaign_id == campaign.id))
    session.execute(delete(Participant).where(Participant.campaign_id == campaign.id))
    session.execute(
        update(Activity).where(Activity.campaign_id == campaign.id).values(parent_id=None)
    )
    session.execute(delete(Activity).where(Activity.campaign_id == campaign.id))
    session.execute(delete(Campaign).where(Campaign.id == campaign.id))
    session.expunge(campaign)


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


# --------------------------------------------------------------------------- activities


def get_activity(*, session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"activity {activity_id} does not exist", field="activity_id")
    return activity


def _check_tree(
    session: Session,
    *,
    campaign: Campaign,
    activity_id: int | None,
    activity_type: str,
    trigger_type: str,
    parent_id: int | None,
) -> None:
    if trigger_type not in TRIGGER_PARENT:
        raise ValidationError(
            f"unknown trigger {trigger_type!r} (known: {', '.join(TRIGGER_PARENT)})",
            field="trigger_type",
        )
    wanted = TRIGGER_PARENT[trigger_type]
    if wanted is None:
        if parent_id is not None:
            raise ValidationError("a 'begin' activity has no parent", field="parent_id")
        return
    if parent_id is None:
        raise ValidationError(f"trigger {trigger_type!r} needs a parent activity", field="parent_id")
    parent = session.get(Activity, parent_id)
    if parent is None or parent.campaign_id != campaign.id:
        raise ValidationError(
            f"parent activity {parent_id} is not in this campaign", field="parent_id"
        )
    if wanted != "any" and parent.activity_type != wanted:
        raise ValidationError(
            f"trigger {trigger_type!r} needs an {wanted} parent, not {parent.activity_type!r}",
            field="parent_id",
        )
    if activity_id is not None:
        # no cycles: the new parent must not be the activity itself or one of its descendants
        current: Activity | None = parent
        while current is not None:
            if current.id == activity_id:
                raise ValidationError(
                    "the parent cannot be the activity itself or one of its descendants",
                    field="parent_id",
                )
            current = session.get(Activity, current.parent_id) if current.parent_id else None


def _check_server_action(
    session: Session, campaign: Campaign, activity_type: str, server_action_id: int | None
) -> int | None:
    if server_action_id is None:
        return None
    if activity_type != "action":
        raise ValidationError(
            "a server action belongs to an activity of type 'action'", field="server_action_id"
        )
    action = session.get(ServerAction, server_action_id)
    if action is None:
        raise ValidationError(
            f"server action {server_action_id} does not exist", field="server_action_id"
        )
    if action.model != campaign.model:
        raise ValidationError(
            f"server action {action.name!r} works on {action.model}, not {campaign.model}",
            field="server_action_id",
        )
    return server_action_id


def _campaign_started(campaign: Campaign) -> bool:
    return campaign.started_at is not None


def add_activity(
    *,
    session: Session,
    now: datetime,
    campaign_id: int,
    name: str,
    activity_type: str,
    trigger_type: str = "begin",
    parent_id: int | None = None,
    interval_number: int = 0,
    interval_unit: str = "hours",
    expiry_number: int | None = None,
    expiry_unit: str = "hours",
    domain: Any = None,
    server_action_id: int | None = None,
) -> Activity:
    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    if activity_type not in ACTIVITY_TYPES:
        raise ValidationError(
            f"unknown activity type {activity_type!r} (known: {', '.join(ACTIVITY_TYPES)})",
            field="activity_type",
        )
    _check_tree(
        session,
        campaign=campaign,
        activity_id=None,
        activity_type=activity_type,
        trigger_type=trigger_type,
        parent_id=parent_id,
    )
    _check_whole(interval_number, "interval_number")
    _check_unit(interval_unit, "interval_unit")
    _check_whole(expiry_number, "expiry_number", allow_none=True)
    _check_unit(expiry_unit, "expiry_unit")
    started = _campaign_started(campaign)
    activity = Activity(
        campaign_id=campaign.id,
        name=_check_name(name),
        activity_type=activity_type,
        server_action_id=_check_server_action(session, campaign, activity_type, server_action_id),
        trigger_type=trigger_type,
        parent_id=parent_id,
        interval_number=interval_number,
        interval_unit=interval_unit,
        expiry_number=expiry_number,
        expiry_unit=expiry_unit,
        domain=_clean_domain(campaign.model, domain, "domain"),
        pending_new=started,
        pending_redate=False,
        created_at=now,
        updated_at=now,
    )
    session.add(activity)
    if started:
        campaign.workflow_modified = True
    campaign.updated_at = now
    session.flush()
    session.refresh(campaign)
    return activity


def _check_unit(unit: str, field: str) -> None:
    if unit not in INTERVAL_UNITS:
        raise ValidationError(
            f"unknown unit {unit!r} (known: {', '.join(INTERVAL_UNITS)})", field=field
        )


def edit_activity(
    *,
    session: Session,
    now: datetime,
    activity_id: int,
    name: str = _UNSET,
    activity_type: str = _UNSET,
    trigger_type: str = _UNSET,
    parent_id: int | None = _UNSET,
    interval_number: int = _UNSET,
    interval_unit: str = _UNSET,
    expiry_number: int | None = _UNSET,
    expiry_unit: str = _UNSET,
    domain: Any = _UNSET,
    server_action_id: int | None = _UNSET,
) -> Activity:
    activity = get_activity(session=session, activity_id=activity_id)
    campaign = get_campaign(session=session, campaign_id=activity.campaign_id, for_update=True)
    new_type = activity.activity_type if activity_type is _UNSET else activity_type
    new_trigger = activity.trigger_type if trigger_type is _UNSET else trigger_type
    new_parent = activity.parent_id if parent_id is _UNSET else parent_id
    if new_trigger == "begin" and parent_id is _UNSET:
        new_parent = None
    if new_type not in ACTIVITY_TYPES:
        raise ValidationError(f"unknown activity type {new_type!r}", field="activity_type")
    if (new_trigger, new_parent, new_type) != (
        activity.trigger_type,
        activity.parent_id,
        activity.activity_type,
    ):
        from nurture.engine.models import Trace

        has_traces = session.scalar(
            select(Trace.id).where(Trace.activity_id == activity.id, Trace.is_test.is_(False)).limit(1)
        )
        if has_traces:
            field = "activity_type" if new_type != activity.activity_type else "trigger_type"
            raise Conflict(
                "the type, trigger and parent of an activity cannot change once it has traces; "
                "add a new activity instead",
                field=field,
            )
    _check_tree(
        session,
        campaign=campaign,
        activity_id=activity.id,
        activity_type=new_type,
        trigger_type=new_trigger,
        parent_id=new_parent,
    )
    if new_type != activity.activity_type:
        children = session.scalars(select(Activity).where(Activity.parent_id == activity.id)).all()
        for child in children:
            wanted = TRIGGER_PARENT[child.trigger_type]
            if wanted not in (None, "any") and wanted != new_type:
                raise ValidationError(
                    f"child activity {child.name!r} triggers on {child.trigger_type!r}, which "
                    f"needs an {wanted} parent",
                    field="activity_type",
                )
    started = _campaign_started(campaign)
    if name is not _UNSET:
        activity.name = _check_name(name)
    if new_type != activity.activity_type:
        activity.activity_type = new_type
        if new_type != "action":
            activity.server_action_id = None
    activity.trigger_type = new_trigger
    activity.parent_id = new_parent
    changed_interval = False
    if interval_number is not _UNSET:
        _check_whole(interval_number, "interval_number")
        changed_interval |= interval_number != activity.interval_number
        activity.interval_number = interval_number
    if interval_unit is not _UNSET:
        _check_unit(interval_unit, "interval_unit")
        changed_interval |= interval_unit != activity.interval_unit
        activity.interval_unit = interval_unit
    if expiry_number is not _UNSET:
        _check_whole(expiry_number, "expiry_number", allow_none=True)
        activity.expiry_number = expiry_number
    if expiry_unit is not _UNSET:
        _check_unit(expiry_unit, "expiry_unit")
        activity.expiry_unit = expiry_unit
    if domain is not _UNSET:
        activity.domain = _clean_domain(campaign.model, domain, "domain")
    if server_action_id is not _UNSET:
        activity.server_action_id = _check_server_action(
            session, campaign, activity.activity_type, server_action_id
        )
    if started and changed_interval and not activity.pending_new:
        activity.pending_redate = True
        campaign.workflow_modified = True
    activity.updated_at = now
    campaign.updated_at = now
    session.flush()
    return activity


def descendant_ids(session: Session, *, activity_id: int) -> list[int]:
    """``activity_id`` and all its descendants."""
    result = [activity_id]
    frontier = [activity_id]
    while frontier:
        children = list(session.scalars(select(Activity.id).where(Activity.parent_id.in_(frontier))))
        result.extend(children)
        frontier = children
    return result


def delete_activity(*, session: Session, now: datetime, activity_id: int) -> None:
    """Delete an activity and its descendants; their traces go with them.

    Participants left with nothing scheduled complete at once.
    """
    from nurture.engine.models import Trace
    from nurture.engine.schedule import complete_participants

    activity = get_activity(session=session, activity_id=activity_id)
    campaign_id = activity.campaign_id
    ids = descendant_ids(session, activity_id=activity_id)
    participant_ids = select(Trace.participant_id).where(
        Trace.activity_id.in_(ids), Trace.state == "scheduled"
    )
    affected = list(session.scalars(participant_ids.distinct()))
    session.execute(delete(Trace).where(Trace.activity_id.in_(ids)))
    session.execute(update(Activity).where(Activity.id.in_(ids)).values(parent_id=None))
    session.execute(delete(Activity).where(Activity.id.in_(ids)))
    session.expire_all()
    if affected:
        complete_participants(
            session, now=now, participant_ids=affected, campaign_id=campaign_id
        )


def children_of(session: Session, *, activity_id: int) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity).where(Activity.parent_id == activity_id).order_by(Activity.id)
        )
    )


# --------------------------------------------------------------------------- server actions


def _check_action_payload(
    session: Session,
    mdef: ModelDef,
    values: dict[str, Any] | None,
    add_tags: Sequence[str] | None,
    remove_tags: Sequence[str] | None,
) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (values or {}).items():
        try:
            fdef = mdef.field(key)
        except RegistryError as exc:
            raise ValidationError(str(exc.args[0]), field=f"set.{key}") from exc
        if fdef.readonly or key == "id":
            raise ValidationError(f"field {key!r} is read-only", field=f"set.{key}")
        clean[key] = _coerce(fdef.type, fdef.selection, fdef.nullable, key, value, session, fdef)
    tags: dict[str, list[str]] = {}
    for label, names in (("add_tags", add_tags), ("remove_tags", remove_tags)):
        if not names:
            continue
        field = mdef.fields.get("tags")
        if field is None or field.relation != "tag":
            raise ValidationError(f"{mdef.label} records have no tags", field=label)
        cleaned = [str(n).strip() for n in names if str(n).strip()]
        if not cleaned:
            raise ValidationError("tag names must not be empty", field=label)
        tags[label] = cleaned
    if not clean and not tags:
        raise ValidationError("the action changes nothing", field="set")
    payload: dict[str, Any] = {"set": clean}
    payload.update(tags)
    return payload


def _coerce(
    ftype: str,
    selection: tuple[str, ...],
    nullable: bool,
    key: str,
    value: Any,
    session: Session,
    fdef: Any,
) -> Any:
    field = f"set.{key}"
    if value is None:
        if not nullable and ftype != "many2one":
            raise ValidationError(f"field {key!r} cannot be empty", field=field)
        return None
    if ftype in ("char", "text"):
        if not isinstance(value, str):
            raise ValidationError(f"field {key!r} takes text", field=field)
        return value
    if ftype == "selection":
        if value not in selection:
            raise ValidationError(
                f"{value!r} is not a value of {key!r} ({', '.join(selection)})", field=field
            )
        return value
    if ftype == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(f"field {key!r} takes true or false", field=field)
        return value
    if ftype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"field {key!r} takes a whole number", field=field)
        if key == "priority" and not 0 <= value <= 3:
            raise ValidationError("priority is between 0 and 3", field=field)
        return value
    if ftype == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"field {key!r} takes a number", field=field)
        return float(value)
    if ftype == "datetime":
        if not isinstance(value, str):
            raise ValidationError(f"field {key!r} takes an ISO-8601 date", field=field)
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(f"{value!r} is not an ISO-8601 date", field=field) from exc
        return value
    if ftype == "many2one":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"field {key!r} takes a record id", field=field)
        target = REGISTRY.get(fdef.relation)
        if session.get(target.orm, value) is None:
            raise ValidationError(f"{target.label} {value} does not exist", field=field)
        return value
    raise ValidationError(f"field {key!r} ({ftype}) cannot be set by an action", field=field)


def _clean_server_action(
    session: Session,
    model: str,
    action_type: str,
    payload: Any,
    values: dict[str, Any] | None,
    add_tags: Sequence[str] | None,
    remove_tags: Sequence[str] | None,
) -> Any:
    """The checked payload of a server action (shared by create and update)."""
    mdef = _target(model)
    shortcut = values is not None or add_tags is not None or remove_tags is not None
    if action_type == "update_record":
        if payload is not None:
            if shortcut:
                raise ValidationError(
                    "give either payload or values/add_tags/remove_tags", field="payload"
                )
            if not isinstance(payload, dict):
                raise ValidationError("the action payload must be an object", field="payload")
            unknown = sorted(set(payload) - {"set", "add_tags", "remove_tags"})
            if unknown:
                raise ValidationError(
                    f"unknown payload key {unknown[0]!r} (known: add_tags, remove_tags, set)",
                    field=str(unknown[0]),
                )
            values = payload.get("set")
            if values is not None and not isinstance(values, dict):
                raise ValidationError("set takes an object {field: value}", field="set")
            add_tags = _tag_names(payload.get("add_tags"), "add_tags")
            remove_tags = _tag_names(payload.get("remove_tags"), "remove_tags")
        clean = _check_action_payload(session, mdef, values, add_tags, remove_tags)
    else:
        if shortcut:
            raise ValidationError(
                f"actions of type {action_type!r} take a payload", field="payload"
            )
        try:
            from nurture.actions import validate_action
        except ImportError:  # pragma: no cover - the actions package is part of Nurture
            raise ValidationError(
                f"unknown action type {action_type!r} (known: {', '.join(SERVER_ACTION_TYPES)})",
                field="action_type",
            ) from None
        clean = validate_action(model, action_type, payload)
    return clean


def create_server_action(
    *,
    session: Session,
    now: datetime,
    name: str,
    model: str,
    action_type: str = "update_record",
    payload: Any = None,
    values: dict[str, Any] | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
) -> ServerAction:
    """A server action on ``model``, stored as data (never code).

    ``update_record`` (set field values, add/remove tags) is checked here against the
    registry and the database (values coerced, related records must exist); it takes
    either ``payload`` (``{"set": …, "add_tags": …, "remove_tags": …}``) or the
    ``values``/``add_tags``/``remove_tags`` keywords. Every other kind takes ``payload``,
    checked by the kind's own validator (:func:`nurture.actions.validate_action`).
    """
    clean = _clean_server_action(
        session, model, action_type, payload, values, add_tags, remove_tags
    )
    action = ServerAction(
        name=_check_name(name),
        model=model,
        action_type=action_type,
        payload=json.dumps(clean),
        created_at=now,
    )
    session.add(action)
    session.flush()
    return action


def get_server_action(*, session: Session, action_id: int) -> ServerAction:
    action = session.get(ServerAction, action_id)
    if action is None:
        raise NotFound(f"server action {action_id} does not exist", field="id")
    return action


def _activities_using(session: Session, action_id: int) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity).where(Activity.server_action_id == action_id).order_by(Activity.id)
        )
    )


def _using_message(users: list[Activity]) -> str:
    first = users[0]
    others = len(users) - 1
    more = f" and {others} other activit{'y' if others == 1 else 'ies'}" if others else ""
    return f"activity {first.name!r} (id {first.id}, campaign {first.campaign_id}){more}"


def update_server_action(
    *,
    session: Session,
    now: datetime,
    action_id: int,
    name: str = _UNSET,
    model: str = _UNSET,
    action_type: str = _UNSET,
    payload: Any = _UNSET,
    values: dict[str, Any] | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
) -> ServerAction:
    """Edit a server action; the payload is checked exactly as :func:`create_server_action`
    checks it. When the model, the type or the payload changes, the resulting payload (the
    stored one when no new one is given) is validated again. The model of an action used by
    an activity cannot change (the activity's campaign targets the old model)."""
    action = get_server_action(session=session, action_id=action_id)
    new_model = action.model if model is _UNSET else model
    new_type = action.action_type if action_type is _UNSET else action_type
    shortcut = values is not None or add_tags is not None or remove_tags is not None
    if new_model != action.model:
        users = _activities_using(session, action_id)
        if users:
            raise Conflict(
                f"the model cannot change: {_using_message(users)} uses this action",
                field="model",
            )
    if payload is _UNSET and not shortcut:
        if model is not _UNSET or action_type is not _UNSET:
            stored = json.loads(action.payload or "{}")
            action.payload = json.dumps(
                _clean_server_action(session, new_model, new_type, stored, None, None, None)
            )
    else:
        action.payload = json.dumps(
            _clean_server_action(
                session,
                new_model,
                new_type,
                None if payload is _UNSET else payload,
                values,
                add_tags,
                remove_tags,
            )
        )
    if name is not _UNSET:
        action.name = _check_name(name)
    action.model = new_model
    action.action_type = new_type
    session.flush()
    return action


def delete_server_action(*, session: Session, now: datetime, action_id: int) -> None:
    """Delete a server action; refused (:class:`Conflict`) while an activity uses it."""
    action = get_server_action(session=session, action_id=action_id)
    users = _activities_using(session, action_id)
    if users:
        raise Conflict(
            f"server action {action.name!r} is used by {_using_message(users)}",
            field="id",
        )
    session.delete(action)
    session.flush()


def _tag_names(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValidationError(f"{field} takes a list of tag names", field=field)
    return [str(v) for v in value]


def ensure_tags(session: Session, names: Sequence[str]) -> dict[str, int]:
    """Tag ids by name, creating the missing ones."""
    existing = {t.name: t.id for t in session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name not in existing:
            tag = Tag(name=name, color=0)
            session.add(tag)
            session.flush()
            existing[name] = tag.id
    return existing


def update_campaign(*, session: Session, now: datetime, campaign_id: int) -> Campaign:
    """*Update*: apply workflow changes to existing participants (SPEC §3)."""
    from nurture.engine.schedule import apply_workflow_changes

    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    apply_workflow_changes(session, campaign=campaign, now=now)
    campaign.workflow_modified = False
    campaign.updated_at = now
    session.flush()
    return campaign
