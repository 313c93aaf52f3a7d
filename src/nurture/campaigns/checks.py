"""Field checks shared by the campaign, activity and server-action services.

Each raises :class:`~nurture.errors.ValidationError` naming the field at fault.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from nurture.campaigns.models import INTERVAL_UNITS
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.models import User
from nurture.records.registry import ModelDef, RegistryError

#: default of the keyword arguments of the edit functions: "leave this field as it is"
UNSET: Any = object()


def target_model(model: str) -> ModelDef:
    try:
        return REGISTRY.target(model)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field="model") from exc


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError("name is required", field="name")
    if len(name) > 200:
        raise ValidationError("name is longer than 200 characters", field="name")
    return name


def check_user(session: Session, user_id: int | None) -> int | None:
    if user_id is not None and session.get(User, user_id) is None:
        raise ValidationError(f"user {user_id} does not exist", field="responsible_id")
    return user_id


def check_whole(value: Any, field: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field} must be a whole number ≥ 0", field=field)
    return value


def check_unit(unit: str, field: str) -> None:
    if unit not in INTERVAL_UNITS:
        raise ValidationError(
            f"unknown unit {unit!r} (known: {', '.join(INTERVAL_UNITS)})", field=field
        )
