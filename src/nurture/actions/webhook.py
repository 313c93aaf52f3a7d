"""Send a webhook (``webhook``): one signed JSON POST per record.

Payload::

    {"url": "https://crm.example.com/hooks/nurture",
     "secret": "a shared secret",     # optional: signs the body (default: one generated
                                      # for the action, shown once, rotatable)
     "fields": ["name", "email"],     # optional: the record fields to send (default: all)
     "timeout": 10,                   # seconds per attempt (1–30)
     "retries": 2}                    # extra attempts on network errors, 429 and 5xx (0–5)

Body (``Content-Type: application/json``)::

    {"event": "nurture.server_action",
     "delivery": "<trace id>",
     "sent_at": "2026-01-05T09:00:00Z",
     "campaign": {"id": 1, "name": "Welcome"},
     "activity": {"id": 4, "name": "Notify CRM"},
     "action": {"id": 2, "name": "Push to CRM"},
     "trace": {"id": 99, "participant_id": 12, "is_test": false},
     "model": "contact",
     "record": {"id": 7, "name": "Ann", "email": "ann@example.com",
                "salesperson": {"id": 3, "name": "Bob"},
                "tags": [{"id": 1, "name": "Hot"}], "created_at": "2026-01-02T10:00:00", …}}

Headers: ``X-Nurture-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with
the secret>``, ``X-Nurture-Delivery: <trace id>`` (the same for every retry: a receiver
de-duplicates on it), ``X-Nurture-Event: server_action``.

**Through the outbox.** The action makes no request itself: in the engine's batch transaction
it writes one :class:`~nurture.channels.webhook.models.WebhookDelivery` row per record (URL,
body, signed headers) and the trace is ``processed``; after commit the delivery loop POSTs it
(:mod:`nurture.channels.webhook.delivery`, the same crash-safe core as email and SMS). Any 2xx
answer is success. Network errors, timeouts, 429 and 5xx are retried with exponential
backoff (0.5 s, 1 s, 2 s…, ``Retry-After`` honoured, at most 10 s) up to ``retries`` extra
attempts; other answers (including redirects, which are never followed), a refused address
or the last attempt fail the delivery and turn the record's trace to ``error`` with the
reason.

Address safety: a URL whose host is a non-public literal (or ``localhost``) is refused when
the action is saved or run; every address the host resolves to is checked again when the
request is made (:mod:`nurture.channels.webhook.transport`), unless
``NURTURE_WEBHOOK_ALLOW_PRIVATE`` is true.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import urllib.parse
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from nurture.actions.base import (
    ActionFailed,
    check_keys,
    int_value,
    payload_of,
    register_kind,
    run_per_record,
    text_value,
)
from nurture.campaigns.models import ServerAction
from nurture.channels.webhook.models import WebhookDelivery
from nurture.channels.webhook.transport import IPAddress, allow_private, is_public
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, RegistryError

MAX_TIMEOUT = 30
MAX_RETRIES = 5
USER_AGENT = "nurture-webhook/1"

# --------------------------------------------------------------------------- validation


def _check_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("url is required", field="url")
    url = value.strip()
    if len(url) > 2000:
        raise ValidationError("url is longer than 2000 characters", field="url")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"url: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url must be an http:// or https:// URL with a host", field="url")
    if parts.username or parts.password:
        raise ValidationError("url: put credentials in the secret, not in the URL", field="url")
    del port
    if not allow_private():
        host = parts.hostname
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
            literal = ipaddress.ip_address("127.0.0.1")
        if literal is not None and not is_public(literal):
            raise ValidationError(
                f"url: {host} is not a public address (set NURTURE_WEBHOOK_ALLOW_PRIVATE=true "
                "to allow private addresses)",
                field="url",
            )
    return url


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"url", "secret", "fields", "timeout", "retries"})
    mdef = REGISTRY.target(model)
    url = _check_url(payload.get("url"))
    secret = text_value(payload, "secret", max_length=500)
    fields = payload.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ValidationError("fields takes a list of field names", field="fields")
        for name in fields:
            try:
                fdef = mdef.field(name)
            except RegistryError as exc:
                raise ValidationError(str(exc.args[0]), field="fields") from None
            if fdef.type == "one2many":
                raise ValidationError(f"fields: {name!r} cannot be sent", field="fields")
        fields = list(dict.fromkeys(fields))
    timeout = int_value(payload, "timeout", default=10, minimum=1, maximum=MAX_TIMEOUT)
    retries = int_value(payload, "retries", default=2, minimum=0, maximum=MAX_RETRIES)
    return {"url": url, "secret": secret, "fields": fields, "timeout": timeout, "retries": retries}


# --------------------------------------------------------------------------- body


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def record_data(model: ModelDef, record: Any, fields: list[str] | None = None) -> dict[str, Any]:
    """The record's registered fields as JSON values (relations as ``{"id", "name"}``)."""
    out: dict[str, Any] = {"id": int(record.id)}
    names = fields if fields is not None else list(model.fields)
    for name in names:
        fdef = model.fields.get(name)
        if fdef is None or fdef.type == "one2many":
            continue
        value = getattr(record, name, None)
        if fdef.type == "many2one":
            target = REGISTRY.get(fdef.relation) if fdef.relation else None
            out[name] = (
                None
                if value is None
                else {"id": int(value.id), "name": _json_value(getattr(value, target.rec_name, None)) if target else None}
            )
        elif fdef.type == "many2many":
            target = REGISTRY.get(fdef.relation) if fdef.relation else None
            out[name] = [
                {"id": int(v.id), "name": _json_value(getattr(v, target.rec_name, None)) if target else None}
                for v in value or ()
            ]
        else:
            out[name] = _json_value(value)
    return out


def build_body(
    batch: ExecutionBatch, action: ServerAction, trace: DueTrace, record: Any, fields: list[str] | None
) -> bytes:
    model = REGISTRY.get(action.model)
    data = {
        "event": "nurture.server_action",
        "delivery": str(trace.id),
        "sent_at": batch.now.replace(microsecond=0).isoformat() + "Z",
        "campaign": {"id": batch.campaign.id, "name": batch.campaign.name},
        "activity": {"id": batch.activity.id, "name": batch.activity.name},
        "action": {"id": action.id, "name": action.name},
        "trace": {"id": trace.id, "participant_id": trace.participant_id, "is_test": trace.is_test},
        "model": action.model,
        "record": record_data(model, record, fields),
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The ``X-Nurture-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def queue_delivery(
    batch: ExecutionBatch,
    action: ServerAction,
    trace: DueTrace,
    *,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    retries: int,
) -> None:
    """The outbox row of one POST, in the batch transaction (delivered after commit)."""
    batch.session.execute(
        insert(WebhookDelivery),
        [
            {
                "trace_id": trace.id,
                "campaign_id": batch.campaign.id,
                "action_id": action.id,
                "delivery_id": headers["X-Nurture-Delivery"],
                "url": url,
                "headers": json.dumps(dict(headers)),
                "body": body,
                "timeout": int(timeout),
                "max_attempts": retries + 1,
                "state": "queued",
                "attempts": 0,
                "next_attempt_at": batch.now,
                "created_at": batch.now,
                "updated_at": batch.now,
            }
        ],
    )


def send_webhook(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    url = str(payload.get("url") or "")
    fields = payload.get("fields")
    timeout = float(payload.get("timeout") or 10)
    raw_retries = payload.get("retries")
    retries = int(raw_retries) if isinstance(raw_retries, int) else 2
    try:
        _check_url(url)
        secret = str(payload.get("secret") or "")
        if not secret:
            raise ActionFailed("the action has no signing secret; rotate its secret")
    except Exception as exc:
        message = exc.message if isinstance(exc, ValidationError) else str(exc)
        return {t.id: Outcome("error", f"Webhook refused: {message}") for t in batch.traces}

    def step(record: Any, trace: DueTrace) -> None:
        body = build_body(batch, action, trace, record, fields)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Nurture-Signature": sign(body, secret),
            "X-Nurture-Delivery": str(trace.id),
            "X-Nurture-Event": "server_action",
        }
        queue_delivery(batch, action, trace, url=url, body=body, headers=headers, timeout=timeout, retries=retries)

    return run_per_record(batch, action, step)


register_kind(
    "webhook",
    label="Send a webhook",
    validate=validate_payload,
    run=send_webhook,
    secrets=("secret",),
)
