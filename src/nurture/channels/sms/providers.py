"""SMS providers behind one interface, and delivery-status callbacks.

Every provider has ``send(to, body, *, status_callback) -> SmsSendResult``:

* ``sent`` with the provider's message id (it accepted the message; delivery is reported
  later through the status callback);
* ``temporary_failure`` (rate limited or provider down after the retries; try again later);
* ``permanent_failure`` with the provider's reason (bad number, blocked, auth refused…).

Providers:

* :class:`OutboxProvider` — the default: keeps messages in memory, sends nothing (the
  database-backed outbox viewable in the UI comes with the message table);
* :class:`HttpSmsProvider` — a Twilio-compatible REST API, configured by ``NURTURE_SMS_URL``
  (``https://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/2010-04-01/Accounts/ACCOUNT_SID``) and the
  sender ``NURTURE_SMS_FROM`` (a number, or a Messaging Service SID ``MG…``). It posts the
  form fields ``To``, ``From`` (or ``MessagingServiceSid``), ``Body`` and ``StatusCallback``
  to ``…/Messages.json`` with HTTP basic auth. 429 and 5xx answers are retried with
  exponential backoff honouring ``Retry-After``; another 4xx is a permanent failure carrying
  Twilio's error ``code`` and ``message``. A connection that cannot be opened is retried too;
  a request whose answer never came (read timeout) is *not* retried — the provider may have
  accepted it, and a retried send must never reach the recipient twice — it is reported as a
  temporary failure for the caller to reconcile.

Status callbacks (:func:`parse_status_callback`) are verified with Twilio's scheme: the
``X-Twilio-Signature`` header is base64(HMAC-SHA1(auth token, full URL + the POST parameters
sorted by name, each as name + value)). A ``failed`` or ``undelivered`` status is a bounce: the
caller records an ``sms_bounce`` event on the message's trace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

SendStatus = Literal["sent", "temporary_failure", "permanent_failure"]
#: delivery statuses that mean the SMS did not reach the phone (→ ``sms_bounce``)
BOUNCE_STATUSES = frozenset({"failed", "undelivered"})
#: every status Twilio reports for an outgoing message
KNOWN_STATUSES = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered",
     "failed", "canceled", "read", "receiving", "received"}
)


class SmsConfigError(ValueError):
    """``NURTURE_SMS_URL`` / ``NURTURE_SMS_FROM`` are not usable; the message says why."""


@dataclass(frozen=True)
class SmsSendResult:
    status: SendStatus
    provider_id: str | None = None
    reason: str | None = None
    error_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class SmsProvider(Protocol):
    name: str

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsSendResult:
        """Hand one message (``to`` in E.164) to the provider."""


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class OutboxMessage:
    provider_id: str
    to: str
    body: str
    status_callback: str | None
    created_at: datetime


@dataclass
class OutboxProvider:
    """In-memory outbox: every message is accepted and kept (nothing leaves the process)."""

    name: str = "outbox"
    messages: list[OutboxMessage] = field(default_factory=list)

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsSendResult:
        provider_id = f"outbox-{len(self.messages) + 1}"
        self.messages.append(
            OutboxMessage(provider_id, to, body, status_callback, datetime.now(UTC).replace(tzinfo=None))
        )
        return SmsSendResult("sent", provider_id=provider_id)

    def clear(self) -> None:
        self.messages.clear()


# --------------------------------------------------------------------------- HTTP (Twilio)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


class _NotSent(Exception):
    """The request could not be delivered to the provider at all (safe to retry)."""


class _NoAnswer(Exception):
    """The request may have reached the provider but no answer came back."""


def _retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - float(now()))


def _provider_error(answer: _Answer) -> tuple[str, int | None]:
    """Twilio's ``message`` and ``code`` from an error answer, or a generic description."""
    try:
        data = json.loads(answer.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("detail")
        code = data.get("code")
        code_int = code if isinstance(code, int) and not isinstance(code, bool) else None
        if message:
            return str(message), code_int
    text = answer.body.decode("utf-8", "replace").strip()[:200]
    return (f"HTTP {answer.status}: {text}" if text else f"HTTP {answer.status}"), None


class HttpSmsProvider:
    """A Twilio-compatible REST client (one POST per message, retries on 429/5xx)."""

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        sender: str,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SmsConfigError(f"NURTURE_SMS_URL: expected an http(s) URL, got {url!r}")
        if not parts.username or parts.password is None:
            raise SmsConfigError(
                "NURTURE_SMS_URL: put the account SID and auth token in the URL "
                "(https://ACCOUNT_SID:AUTH_TOKEN@host/2010-04-01/Accounts/ACCOUNT_SID)"
            )
        if not sender:
            raise SmsConfigError("NURTURE_SMS_FROM: the sender number or Messaging Service SID is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.account_sid = urllib.parse.unquote(parts.username)
        self.auth_token = urllib.parse.unquote(parts.password)
        host = parts.hostname
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        path = parts.path.rstrip("/")
        self.messages_url = urllib.parse.urlunsplit(
            (parts.scheme, netloc, f"{path}/Messages.json", "", "")
        )
        self.sender = sender
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    @classmethod
    def from_settings(cls, extra: Mapping[str, str], **kwargs: Any) -> HttpSmsProvider:
        url = extra.get("NURTURE_SMS_URL", "").strip()
        if not url:
            raise SmsConfigError("NURTURE_SMS_URL is not set")
        return cls(url, sender=extra.get("NURTURE_SMS_FROM", "").strip(), **kwargs)

    # -- transport -------------------------------------------------------------------
    def _post(self, form: Mapping[str, str]) -> _Answer:
        data = urllib.parse.urlencode(form).encode("ascii")
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.messages_url,
            data=data,
            method="POST",
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": "nurture-sms/1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return _Answer(response.status, response.read(), dict(response.headers.items()))
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read()
            return _Answer(exc.code, body, dict(exc.headers.items()) if exc.headers else {})
        except urllib.error.URLError as exc:  # could not connect / resolve: nothing was sent
            raise _NotSent(str(exc.reason)) from exc
        except ConnectionRefusedError as exc:
            raise _NotSent(str(exc)) from exc
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise _NoAnswer(str(exc) or type(exc).__name__) from exc

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = float(self.backoff) * 2.0 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, float(self.max_backoff))

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsSendResult:
        form: dict[str, str] = {"To": to, "Body": body}
        if self.sender.startswith("MG"):
            form["MessagingServiceSid"] = self.sender
        else:
            form["From"] = self.sender
        if status_callback:
            form["StatusCallback"] = status_callback
        last_reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = self._post(form)
            except _NotSent as exc:
                last_reason = f"provider unreachable: {exc}"
                retry_after = None
            except _NoAnswer as exc:
                return SmsSendResult(
                    "temporary_failure", reason=f"no answer from the provider ({exc}); not retried"
                )
            else:
                if 200 <= answer.status < 300:
                    return self._accepted(answer)
                message, code = _provider_error(answer)
                if answer.status == 429 or answer.status >= 500:
                    last_reason = f"{message} (HTTP {answer.status})"
                    retry_after = _retry_after(answer.headers.get("Retry-After"))
                else:
                    reason = f"{message} (error {code})" if code is not None else message
                    return SmsSendResult("permanent_failure", reason=reason, error_code=code)
            if attempt < self.max_attempts:
                delay = self._delay(attempt, retry_after)
                log.info("SMS provider: %s; retry %d in %.2fs", last_reason, attempt, delay)
                self._sleep(delay)
        return SmsSendResult(
            "temporary_failure", reason=f"{last_reason} after {self.max_attempts} attempts"
        )

    @staticmethod
    def _accepted(answer: _Answer) -> SmsSendResult:
        try:
            data = json.loads(answer.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not sid:
            return SmsSendResult(
                "temporary_failure", reason=f"HTTP {answer.status} without a message sid"
            )
        status = data.get("status") if isinstance(data, dict) else None
        if status in BOUNCE_STATUSES:
            message = data.get("error_message") or f"message {status}"
            code = data.get("error_code")
            return SmsSendResult(
                "permanent_failure",
                provider_id=str(sid),
                reason=str(message),
                error_code=code if isinstance(code, int) else None,
            )
        return SmsSendResult("sent", provider_id=str(sid))


# --------------------------------------------------------------------------- factory


def provider_from_settings(extra: Mapping[str, str], **kwargs: Any) -> SmsProvider:
    """``http`` when ``NURTURE_SMS_URL`` is set (``NURTURE_SMS_PROVIDER=outbox`` forces the
    outbox), else the outbox."""
    choice = extra.get("NURTURE_SMS_PROVIDER", "").strip().lower()
    if choice not in ("", "outbox", "http"):
        raise SmsConfigError(f"NURTURE_SMS_PROVIDER: expected outbox or http, got {choice!r}")
    if choice == "outbox" or (not choice and not extra.get("NURTURE_SMS_URL", "").strip()):
        return OutboxProvider()
    return HttpSmsProvider.from_settings(extra, **kwargs)


# --------------------------------------------------------------------------- callbacks


class CallbackRefused(Exception):
    """A status callback that is not signed by the provider, or not a status at all."""


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: str
    error_code: str | None = None

    @property
    def is_bounce(self) -> bool:
        """The message did not reach the phone: the caller records ``sms_bounce``."""
        return self.status in BOUNCE_STATUSES

    @property
    def is_delivered(self) -> bool:
        return self.status == "delivered"


Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), str(v)) for k, v in items]


def twilio_signature(url: str, params: Params, auth_token: str) -> str:
    """Twilio's ``X-Twilio-Signature`` of a POST to ``url`` with ``params`` (parameters sorted
    by name then value; a repeated identical pair counts once, as in Twilio's libraries)."""
    payload = url + "".join(k + v for k, v in sorted(set(_pairs(params))))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio signs the URL
    as it called it; proxies often add or drop ``:443``)."""
    variants = [url]
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if default is not None:
        if parts.port is None:
            other = f"{prefix}{host}:{default}"
        elif parts.port == default:
            other = f"{prefix}{host}"
        else:
            return variants
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=other)))
    return variants


def verify_signature(url: str, params: Params, signature: str | None, auth_token: str) -> bool:
    if not signature or not auth_token:
        return False
    pairs = _pairs(params)
    matched = False
    for candidate in _url_variants(url):
        expected = twilio_signature(candidate, pairs, auth_token)
        matched |= hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii", "replace"))
    return matched


def parse_status_callback(
    url: str, params: Params, signature: str | None, auth_token: str
) -> StatusUpdate:
    """The (message id, status) a provider reports, once its signature checks out.

    ``url`` is the full URL the provider called (scheme, host, path and query, as the
    provider saw it); ``params`` the POST form. Raises :class:`CallbackRefused` for a missing
    or forged signature, or a form without ``MessageSid``/``MessageStatus``.
    """
    pairs = _pairs(params)
    if not verify_signature(url, pairs, signature, auth_token):
        raise CallbackRefused("invalid X-Twilio-Signature")
    form = dict(pairs)
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or not status:
        raise CallbackRefused("not a message status callback (no MessageSid / MessageStatus)")
    if status not in KNOWN_STATUSES:
        raise CallbackRefused(f"unknown message status {status!r}")
    return StatusUpdate(provider_id=sid, status=status, error_code=form.get("ErrorCode") or None)
