"""Campaign and activity filters (SPEC §3): stored as JSON prefix-notation domains; an
activity applies the campaign filter AND its own AND those of its ancestors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.models import Activity, Campaign
from nurture.errors import ValidationError


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


def clean_domain(model: str, domain: Any, field: str) -> str:
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
