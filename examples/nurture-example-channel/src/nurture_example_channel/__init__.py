"""Example Nurture channel plugin: a short text per record, POSTed as JSON to an HTTP endpoint.

Settings (environment): ``NURTURE_HTTP_MESSAGE_URL`` (where messages are POSTed) and
``NURTURE_HTTP_MESSAGE_TEMPLATE`` (the text; variables ``record``, ``campaign``, ``activity``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from nurture.channels.outbox.channel import (
    Message,
    NewMessage,
    OutboxChannel,
    SendResult,
    queue_messages,
)
from nurture.channels.sms.render import compile_sms
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.records.catalog import REGISTRY

NAME = "http_message"
URL_SETTING = "NURTURE_HTTP_MESSAGE_URL"
TEMPLATE_SETTING = "NURTURE_HTTP_MESSAGE_TEMPLATE"
DEFAULT_TEMPLATE = "Hello {{ record.name }}, news from {{ campaign }}"
CONTEXT_NAMES = frozenset({"campaign", "activity"})
TIMEOUT = 10.0


def execute(batch: ExecutionBatch) -> Mapping[int, Outcome]:
    """The ``http_message`` executor: render one text per trace and queue it (no network)."""
    traces = batch.traces
    if not traces:
        return {}
    mdef = REGISTRY.target(batch.campaign.model)
    source = os.environ.get(TEMPLATE_SETTING, "").strip() or DEFAULT_TEMPLATE
    try:
        template = compile_sms(mdef, source, names=CONTEXT_NAMES)
    except Exception as exc:
        return {t.id: Outcome("error", f"{TEMPLATE_SETTING}: {exc}"[:1000]) for t in traces}
    orm = mdef.orm
    records = {r.id: r for r in batch.session.scalars(select(orm).where(orm.id.in_(batch.record_ids)))}
    context = {"campaign": batch.campaign.name, "activity": batch.activity.name}
    outcomes: dict[int, Outcome] = {}
    queued: list[NewMessage] = []
    for trace in traces:
        record = records.get(trace.res_id)
        if record is None:
            outcomes[trace.id] = Outcome("error", f"{mdef.label} {trace.res_id} no longer exists")
            continue
        try:
            text = template.render_text(record, context=context)
        except Exception as exc:
            outcomes[trace.id] = Outcome("error", f"Cannot render the message: {exc}"[:1000])
            continue
        if not text:
            outcomes[trace.id] = Outcome("canceled", "empty message")
            continue
        queued.append(NewMessage(trace.id, f"{mdef.name}/{record.id}", {"text": text}))
    queue_messages(batch, NAME, queued)
    return outcomes


def send(message: Message) -> SendResult:
    """POST one message (outside any transaction); 2xx sent, 429/5xx/network retried."""
    url = os.environ.get(URL_SETTING, "").strip()
    if not url:
        return SendResult("retry", f"{URL_SETTING} is not set")
    body = {
        "channel": message.channel,
        "message": message.id,
        "trace": message.trace_id,
        "to": message.recipient,
        "text": message.payload.get("text", ""),
        "test": message.is_test,
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": str(message.trace_id)},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (operator's URL)
            answer = response.read(4096)
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
        if exc.code == 429 or exc.code >= 500:
            return SendResult("retry", reason, retry_after=_seconds(exc.headers.get("Retry-After")))
        return SendResult("failed", reason)
    except OSError as exc:
        return SendResult("retry", f"{type(exc).__name__}: {exc}")
    return SendResult("sent", provider_id=_provider_id(answer))


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _provider_id(answer: bytes) -> str | None:
    try:
        data: Any = json.loads(answer)
    except ValueError:
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return str(found)[:128] if found is not None else None


channel = OutboxChannel(NAME, send, max_attempts=3, retry_delays=(60, 300))
