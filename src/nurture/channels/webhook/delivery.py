"""Delivery of queued webhooks (the ``webhook`` action's outbox), after commit.

:func:`deliver_queued_webhooks` runs one round; :func:`deliver_due_webhooks` runs rounds
until nothing is due. The loop is the shared delivery core of :mod:`nurture.channels.queue`
(claim one delivery right before its request, record its outcome in the transaction that
claims the next, short leases renewed by a heartbeat); this module is the
:class:`WebhookChannel`:

* *send*: one POST (:func:`.transport.post_once`: address checks, pinned connection, no
  redirects), outside any transaction;
* *record*, checking the claim token: a 2xx answer makes the row ``sent``; a network error,
  a timeout, 429 or 5xx puts it back to ``queued`` after :func:`~.transport.backoff`
  (``Retry-After`` honoured) until its ``max_attempts``; any other answer, a refused address
  or the last attempt makes it ``failed`` and its trace ``error`` with the reason
  (failure type ``webhook_failed``; an action step has no events);
* *recover*: a row still ``sending`` past its lease belongs to a worker that died with the
  request in flight: the receiver may have got it, so it is **never resent**; it becomes
  ``failed`` and its trace gets the failure type ``webhook_unknown``.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from nurture.channels.queue import (
    DeliveryResult,
    claim_queued,
    deliver_round,
    deliver_rounds,
    fail_trace,
    recover_interrupted,
    update_claimed,
)
from nurture.channels.webhook import transport
from nurture.channels.webhook.models import WebhookDelivery

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 200
FAILURE_FAILED = "webhook_failed"
FAILURE_UNKNOWN = "webhook_unknown"


@dataclass(frozen=True)
class _Claimed:
    id: int
    trace_id: int
    url: str
    headers: dict[str, str]
    body: bytes
    timeout: int
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Attempt:
    """One POST's outcome: ``sent``, ``retry`` (at ``retry_at``) or ``failed``."""

    state: Literal["sent", "retry", "failed"]
    reason: str = ""
    status: int | None = None
    retry_at: datetime | None = None


def claim(session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
    rows = claim_queued(
        session, WebhookDelivery, now=now, limit=limit, token=token, lease=lease,
        columns=("trace_id", "url", "headers", "body", "timeout", "attempts", "max_attempts"),
    )
    return [_Claimed(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]


def attempt(item: _Claimed, *, now: datetime) -> Attempt:
    """POST ``item`` once and classify the answer (never raises)."""
    retry_after: str | None = None
    status: int | None = None
    try:
        answer = transport.post_once(item.url, item.body, item.headers, float(item.timeout))
    except transport.WebhookRefused as exc:
        return Attempt("failed", exc.message)
    except (OSError, http.client.HTTPException) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # a bug must not lose the round
        log.exception("webhook delivery %s failed", item.id)
        reason = f"{type(exc).__name__}: {exc}"
    else:
        status = answer.status
        if 200 <= status < 300:
            return Attempt("sent", status=status)
        snippet = " ".join(answer.text.split())[:200]
        reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if not (status == 429 or status >= 500):
            if 300 <= status < 400:
                reason += " (redirects are not followed)"
            return Attempt("failed", f"Webhook failed: {reason}", status)
        retry_after = answer.retry_after
    if item.attempts < item.max_attempts:
        delay = transport.backoff(item.attempts, retry_after)
        return Attempt("retry", reason, status, now + timedelta(seconds=delay))
    return Attempt("failed", f"Webhook failed after {item.attempts} attempt(s): {reason}", status)


class WebhookChannel:
    """The webhook channel of the delivery core (:class:`nurture.channels.queue.Channel`)."""

    name = "webhook"
    model = WebhookDelivery
    limit = DEFAULT_LIMIT

    def claim(self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
        return claim(session, now=now, limit=limit, token=token, lease=lease)

    def send(self, item: _Claimed, *, now: datetime) -> Attempt:
        return attempt(item, now=now)

    def recover(self, session: Session, *, now: datetime) -> int:
        return recover_interrupted(session, WebhookDelivery, now=now, trace_failure=FAILURE_UNKNOWN)

    def record(
        self,
        session: Session,
        outcomes: Sequence[tuple[_Claimed, Attempt]],
        *,
        token: str,
        now: datetime,
        result: DeliveryResult,
    ) -> None:
        for item, got in outcomes:
            values: dict[str, Any] = {"response_status": got.status}
            if got.state == "sent":
                values.update(state="sent", sent_at=now, failure_reason=None)
            elif got.state == "retry":
                values.update(state="queued", next_attempt_at=got.retry_at, failure_reason=got.reason[:1000])
            else:
                values.update(state="failed", failure_reason=got.reason[:1000])
            if not update_claimed(session, WebhookDelivery, item.id, token=token, now=now, **values):
                continue
            if got.state == "sent":
                result.sent += 1
            elif got.state == "retry":
                result.retried += 1
            else:
                fail_trace(session, item.trace_id, message=got.reason, failure_type=FAILURE_FAILED)
                result.failed += 1


def deliver_queued_webhooks(
    db: Any,
    *,
    now: datetime,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta | None = None,
    worker_id: str = "deliver-webhook",
) -> DeliveryResult:
    """One round: recover, then claim, POST and record up to ``limit`` deliveries one by one."""
    return deliver_round(db, WebhookChannel(), now=now, limit=limit, worker_id=worker_id, lease=lease)


def deliver_due_webhooks(
    db: Any,
    *,
    now: datetime,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta | None = None,
    worker_id: str = "deliver-webhook",
    max_rounds: int = 1000,
) -> DeliveryResult:
    """Rounds of :func:`deliver_queued_webhooks` until nothing due is left."""
    return deliver_rounds(
        db, WebhookChannel(), now=now, limit=limit, worker_id=worker_id, lease=lease, max_rounds=max_rounds
    )
