"""CRM activities (to-dos, calls, meetings) scheduled on records for a user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.errors import NotFound
from nurture.records.service import create_record, model_def, update_record


def schedule_activity(
    *,
    session: Session,
    res_model: str,
    res_id: int,
    activity_type: str,
    summary: str,
    due_date: datetime,
    now: datetime,
    user_id: int | None = None,
    note: str | None = None,
) -> int:
    """Plan a to-do / call / meeting about one record, assigned to a user."""
    target = model_def(res_model)
    if session.get(target.orm, res_id) is None:
        raise NotFound(f"no {target.label.lower()} with id {res_id}", field="res_id")
    values: dict[str, Any] = {
        "res_model": target.name,
        "res_id": res_id,
        "activity_type": activity_type,
        "summary": summary,
        "due_date": due_date,
        "note": note,
    }
    if user_id is not None:
        values["user"] = user_id
    return create_record(session=session, model="crm_activity", values=values, now=now)


def mark_activity_done(*, session: Session, activity_id: int, now: datetime) -> None:
    update_record(
        session=session, model="crm_activity", record_id=activity_id, values={"done": True}, now=now
    )
