"""The audit log: who did what to which object, and when.

Functions that change an account (see :mod:`.users`, :mod:`.tokens`) write an entry in the
same transaction; other modules add theirs through :func:`audit`. ``actor`` / ``user`` is
who did it (``None`` for the command line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts.models import AuditLog

# Actions written by Nurture itself; other modules may add theirs (``<object>.<verb>``).
AUDIT_ACTIONS: Final[tuple[str, ...]] = (
    "campaign.create",
    "campaign.start",
    "campaign.stop",
    "campaign.update",
    "campaign.duplicate",
    "campaign.delete",
    "blacklist.add",
    "blacklist.remove",
    "user.create",
    "user.role_change",
    "user.password_change",
    "user.deactivate",
    "user.activate",
    "token.create",
    "token.revoke",
    "settings.update",
)
_ACTION_RE: Final = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class Actor(Protocol):
    """Who performs an operation: a :class:`User` or the web layer's current user."""

    @property
    def id(self) -> int: ...

    @property
    def login(self) -> str: ...

    @property
    def role(self) -> str: ...


def _actor_label(actor: Actor | None) -> str:
    return actor.login if actor is not None else "cli"



AuditObject = Any  # a mapped row with ``__tablename__`` and ``id``, or ``(type, id)``


def _object_ref(obj: AuditObject) -> tuple[str | None, str | None]:
    if obj is None:
        return None, None
    if isinstance(obj, tuple):
        kind, ident = obj
        return str(kind), None if ident is None else str(ident)
    kind = getattr(obj, "__tablename__", type(obj).__name__)
    ident = getattr(obj, "id", None)
    return str(kind), None if ident is None else str(ident)


def audit(
    session: Session,
    user: Actor | None,
    action: str,
    obj: AuditObject = None,
    details: dict[str, Any] | None = None,
    *,
    now: datetime,
    ip: str | None = None,
    actor: str | None = None,
) -> AuditLog:
    """Record that ``user`` (None: the command line, or ``actor``) did ``action`` to ``obj``.

    ``obj`` is a mapped row (its table name and id are kept) or a ``(type, id)`` pair;
    ``details`` must be JSON-serialisable (dates are written as ISO strings).
    """
    if not _ACTION_RE.match(action):
        raise ValueError(f"audit action must look like 'object.verb', got {action!r}")
    object_type, object_id = _object_ref(obj)
    clean = json.loads(json.dumps(details, default=_json_default)) if details else None
    entry = AuditLog(
        at=now,
        user_id=user.id if user is not None else None,
        actor=actor or _actor_label(user),
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=clean,
        ip=ip[:45] if ip else None,
    )
    session.add(entry)
    session.flush()
    return entry


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditLog]
    total: int


def list_audit(
    session: Session,
    *,
    user_id: int | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> AuditPage:
    """Audit entries, newest first, with the total count for pagination.

    ``action`` ending in ``.*`` (e.g. ``campaign.*``) matches every verb of that object.
    """
    conditions: list[Any] = []
    if user_id is not None:
        conditions.append(AuditLog.user_id == user_id)
    if action:
        if action.endswith(".*"):
            conditions.append(AuditLog.action.startswith(action[:-1], autoescape=True))
        else:
            conditions.append(AuditLog.action == action)
    if object_type is not None:
        conditions.append(AuditLog.object_type == object_type)
    if object_id is not None:
        conditions.append(AuditLog.object_id == str(object_id))
    if since is not None:
        conditions.append(AuditLog.at >= since)
    if until is not None:
        conditions.append(AuditLog.at < until)
    total = int(session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0)
    entries = list(
        session.scalars(
            select(AuditLog)
            .where(*conditions)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc())
            .limit(max(0, min(limit, 1000)))
            .offset(max(0, offset))
        )
    )
    return AuditPage(entries=entries, total=total)
