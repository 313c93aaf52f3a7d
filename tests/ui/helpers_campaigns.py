"""Builders shared by the campaigns board, form and participants UI tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from playwright.sync_api import Page
from sqlalchemy import insert

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.models import Campaign
from nurture.db import Database
from nurture.records.models import Contact
from nurture.worker.loop import tick


def bulk_campaigns(db: Database, n: int, *, now: datetime, prefix: str = "Bulk") -> None:
    with db.transaction() as s:
        s.execute(
            insert(Campaign),
            [
                {
                    "name": f"{prefix} {i:04d}",
                    "model": "contact",
                    "domain": "[]",
                    "unicity_field": "email",
                    "include_archived": False,
                    "state": ("draft", "running", "stopped")[i % 3],
                    "event_window_days": 30,
                    "workflow_modified": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )


def bulk_contacts(db: Database, n: int, *, now: datetime, prefix: str = "person") -> None:
    with db.transaction() as s:
        s.execute(
            insert(Contact),
            [
                {
                    "name": f"{prefix.title()} {i:04d}",
                    "email": f"{prefix}{i}@example.com",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )


def running_campaign(db: Database, *, now: datetime, name: str = "Spring welcome") -> tuple[int, int, int]:
    """A started campaign with a tag action at begin and a follow-up one day later, run by
    the engine (so participants and processed steps exist). Returns (campaign, first, later)."""
    with db.transaction() as s:
        cid = cs.create_campaign(session=s, now=now, name=name, model="contact").id
        action = action_service.create_server_action(session=s, now=now, name="Tag Hot", model="contact", add_tags=["Hot"])
        first = activity_service.add_activity(
            session=s, now=now, campaign_id=cid, name="Tag as hot", activity_type="action",
            server_action_id=action.id,
        ).id
        later = activity_service.add_activity(
            session=s, now=now, campaign_id=cid, name="Follow-up tag", activity_type="action",
            server_action_id=action.id, trigger_type="activity", parent_id=first,
            interval_number=1, interval_unit="days",
        ).id
        cs.start_campaign(session=s, now=now, campaign_id=cid)
    tick(db, now=now)
    return cid, first, later


def csrf_of(page: Page) -> str:
    """The page's CSRF token (as htmx sends it)."""
    return str(page.locator("body").evaluate("b => JSON.parse(b.getAttribute('hx-headers'))['X-CSRF-Token']"))


def past(days: int) -> datetime:
    from nurture.clock import utcnow

    return utcnow() - timedelta(days=days)
