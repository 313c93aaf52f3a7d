"""What the email and SMS end-to-end fixtures share: the web app on a test database with the
channels configured from the test's settings, a settable clock, contacts, and a running
campaign with one message step and a tagging child per trigger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email.context import EMAIL
from nurture.channels.sms.context import SMS
from nurture.config import Settings, load_settings
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.records.models import Contact
from nurture.runtime import Runtime
from nurture.web.app import create_app

T0 = datetime(2026, 1, 5, 9, 0, 0)
HOUR = timedelta(hours=1)
BASE_URL = "http://nurture.test"


@dataclass
class AppEnv:
    db: Database
    settings: Settings
    environ: dict[str, str]
    client: TestClient
    clock: list[datetime]

    def at(self, when: datetime) -> None:
        """Set the time the web app sees."""
        self.clock[0] = when

    def rows(self, orm: Any) -> list[Any]:
        """Every row of ``orm``, by id (detached)."""
        with self.db.read() as s:
            rows = list(s.scalars(select(orm).order_by(orm.id)))
            s.expunge_all()
            return rows

    def trace(self, trace_id: int) -> Trace:
        with self.db.read() as s:
            row = s.get(Trace, trace_id)
            assert row is not None
            s.expunge(row)
            return row

    def traces_of(self, activity_id: int) -> list[Trace]:
        with self.db.read() as s:
            rows = list(s.scalars(select(Trace).where(Trace.activity_id == activity_id).order_by(Trace.id)))
            s.expunge_all()
            return rows


def running_app(
    db: Database, tmp_path: Path, environ: dict[str, str]
) -> Iterator[tuple[Settings, dict[str, str], TestClient, list[datetime]]]:
    """The app with ``environ`` (and the database's) as its settings, the channels
    configured from them: the settings, the whole environment, the app's test client and
    its clock. The channels are reset afterwards."""
    environ = {
        "NURTURE_DATA_DIR": str(tmp_path / "data"),
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_BASE_URL": BASE_URL,
        "NURTURE_EMBEDDED_WORKER": "false",
        **environ,
    }
    settings = load_settings(environ)
    EMAIL.configure(settings)
    SMS.configure(settings)
    app = create_app(Runtime(settings=settings, db=db))
    clock = [T0]
    app.state.tracking_clock = lambda: clock[0]
    client = TestClient(app, follow_redirects=False)
    try:
        yield settings, environ, client, clock
    finally:
        client.close()
        SMS.reset()
        EMAIL.reset()


def add_contacts(s: Session, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    for row in rows:
        contact = Contact(
            name=row.get("name", "c"),
            email=row.get("email"),
            mobile=row.get("mobile"),
            phone=row.get("phone"),
            country_code=row.get("country_code"),
            active=True,
            created_at=T0,
            updated_at=T0,
        )
        s.add(contact)
        s.flush()
        ids.append(contact.id)
    return ids


def campaign_with_step(
    db: Database,
    contacts: list[dict[str, Any]],
    *,
    name: str,
    step: tuple[str, str],
    template: Callable[[Session, int], object],
    children: tuple[str, ...],
) -> tuple[int, int, dict[str, int], list[int]]:
    """A running campaign on contacts: one message step (``step``: name, activity type)
    with its template (``template(session, activity_id)``) and a tagging child per trigger."""
    with db.transaction() as s:
        ids = add_contacts(s, contacts)
        cid = cs.create_campaign(session=s, now=T0, name=name, model="contact", domain=None).id
        step_id = activity_service.add_activity(session=s, now=T0, campaign_id=cid, name=step[0], activity_type=step[1]).id
        template(s, step_id)
        kids = {
            trigger: activity_service.add_activity(
                session=s, now=T0, campaign_id=cid, name=f"On {trigger}", activity_type="action",
                server_action_id=action_service.create_server_action(
                    session=s, now=T0, name=f"tag {trigger}", model="contact", add_tags=[trigger]
                ).id,
                trigger_type=trigger, parent_id=step_id, interval_number=0, interval_unit="hours",
            ).id
            for trigger in children
        }
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    return cid, step_id, kids, ids
