"""Tracked links of a campaign, shared by the channels: every URL a message links to is
stored once per campaign (:class:`~nurture.channels.email.models.TrackedLink`, ``UNIQUE
(campaign, url)``); click tokens name the stored link, so redirects only go to stored URLs."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.channels.email.models import TrackedLink


class LinkStore:
    """``store_link`` of a message's composer: one row per (campaign, URL), cached per batch."""

    def __init__(self, session: Session, campaign_id: int, now: datetime) -> None:
        self.session = session
        self.campaign_id = campaign_id
        self.now = now
        self.cache: dict[str, int] = {}

    def __call__(self, url: str) -> int:
        found = self.cache.get(url)
        if found is not None:
            return found
        link_id = self._find(url)
        if link_id is None:
            try:
                with self.session.begin_nested():
                    link = TrackedLink(
                        code=secrets.token_urlsafe(8)[:12],
                        campaign_id=self.campaign_id,
                        url=url,
                        created_at=self.now,
                    )
                    self.session.add(link)
                    self.session.flush()
                    link_id = link.id
            except IntegrityError:  # stored meanwhile by another worker
                link_id = self._find(url)
                if link_id is None:
                    raise
        self.cache[url] = link_id
        return link_id

    def _find(self, url: str) -> int | None:
        found = self.session.scalar(
            select(TrackedLink.id).where(
                TrackedLink.campaign_id == self.campaign_id, TrackedLink.url == url
            )
        )
        return int(found) if found is not None else None
