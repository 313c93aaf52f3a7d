"""A fake Twilio Messages API on loopback, for the HTTP SMS provider's tests.

:class:`FakeTwilio` is a real HTTP server (stdlib ``http.server``, one thread per request)
that speaks the part of the API Nurture uses:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` — checks basic auth (the account
  SID and auth token), the form fields (``To`` in E.164, ``From`` or ``MessagingServiceSid``,
  ``Body``), and answers ``201`` with a Twilio-shaped message resource, or Twilio-shaped
  errors (``{"code", "message", "more_info", "status"}``);
* can be told to fail: :meth:`FakeTwilio.fail_next` queues answers (429 with ``Retry-After``,
  500, 400 with an error code…) served before the normal behaviour resumes;
* records every request (:attr:`FakeTwilio.requests`) and every accepted message;
* :meth:`FakeTwilio.send_status` posts a signed status callback (``delivered``, ``failed``…)
  to the message's ``StatusCallback`` URL, as Twilio does.

:class:`CallbackReceiver` is the other side for tests: a loopback server that records the
callbacks it gets (full URL, form, headers) and answers 204.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nurture.channels.sms.providers import twilio_signature

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    answered: int = 0


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str
    retry_after: str | None


@dataclass
class FakeMessage:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str | None
    status: str = "queued"


def _error(status: int, code: int | None, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTwilio


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
        record = RecordedRequest("POST", self.path, dict(self.headers.items()), form)
        self.server.fake.stall.hold(form.get("To", ""))
        status, payload, headers = self.server.fake.handle(record)
        record.answered = status
        self._send_json(status, payload, headers)

    def do_GET(self) -> None:  # noqa: N802
        self._send_json(405, _error(405, 20004, "Method not allowed"))


class Stall:
    """Holds the request whose key is ``on`` until :meth:`release` (kill tests).

    ``arrived`` is set when that request came in; it is answered normally once released.
    """

    def __init__(self) -> None:
        self.on: str | None = None
        self.arrived = threading.Event()
        self._released = threading.Event()

    def hold(self, key: str) -> None:
        if self.on is not None and key == self.on:
            self.arrived.set()
            self._released.wait(60)

    def release(self) -> None:
        self._released.set()


class FakeTwilio:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, FakeMessage] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        #: hold the request to one number (``stall.on = "+33…"``) until released
        self.stall = Stall()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The ``NURTURE_SMS_URL`` for this server (credentials included)."""
        return (
            f"http://{self.account_sid}:{self.auth_token}@127.0.0.1:{self.port}"
            f"/2010-04-01/Accounts/{self.account_sid}"
        )

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- behaviour -----------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        code: int | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` message requests with this error."""
        text = message or {429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Error")
        with self._lock:
            self._failures.extend(_Failure(status, code, text, retry_after) for _ in range(times))

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            expected = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
            if request.path != expected:
                return 404, _error(404, 20404, f"The requested resource {request.path} was not found"), {}
            auth = request.headers.get("Authorization", "")
            wanted = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
            if auth != f"Basic {wanted}":
                return 401, _error(401, 20003, "Authenticate"), {}
            if self._failures:
                failure = self._failures.pop(0)
                headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                return failure.status, _error(failure.status, failure.code, failure.message), headers
            form = request.form
            to = form.get("To", "")
            if not to:
                return 400, _error(400, 21604, "A 'To' phone number is required."), {}
            if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
                return 400, _error(400, 21211, f"The 'To' number {to} is not a valid phone number."), {}
            sender = form.get("From") or form.get("MessagingServiceSid") or ""
            if not sender:
                return 400, _error(400, 21603, "A 'From' phone number is required."), {}
            body = form.get("Body", "")
            if not body:
                return 400, _error(400, 21602, "Message body is required."), {}
            sid = "SM" + uuid.uuid4().hex
            message = FakeMessage(sid, to, sender, body, form.get("StatusCallback"))
            self.messages[sid] = message
            return 201, self._resource(message), {}

    def _resource(self, message: FakeMessage) -> dict[str, Any]:
        return {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": message.to,
            "from": message.sender,
            "body": message.body,
            "status": message.status,
            "num_segments": "1",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }

    # -- callbacks -----------------------------------------------------------------
    def callback_form(self, sid: str, status: str, *, error_code: str | None = None) -> dict[str, str]:
        message = self.messages[sid]
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.sender,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code:
            form["ErrorCode"] = error_code
        return form

    def send_status(
        self, sid: str, status: str, *, error_code: str | None = None, forge: bool = False
    ) -> int:
        """POST a signed status callback to the message's ``StatusCallback``; the HTTP status.

        ``forge`` signs with a wrong token (what an attacker without the token could send).
        """
        message = self.messages[sid]
        if not message.status_callback:
            raise ValueError(f"message {sid} has no StatusCallback")
        message.status = status
        form = self.callback_form(sid, status, error_code=error_code)
        token = "forged-" + self.auth_token if forge else self.auth_token
        signature = twilio_signature(message.status_callback, form, token)
        request = urllib.request.Request(
            message.status_callback,
            data=urllib.parse.urlencode(form).encode("ascii"),
            method="POST",
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "TwilioProxy/1.1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - test loopback
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


# --------------------------------------------------------------------------- callback side


@dataclass
class ReceivedCallback:
    url: str
    form: dict[str, str]
    headers: dict[str, str]


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: CallbackReceiver


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        host = self.headers.get("Host", "")
        received = ReceivedCallback(
            url=f"http://{host}{self.path}",
            form=dict(urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True)),
            headers=dict(self.headers.items()),
        )
        status = self.server.receiver.record(received, raw)
        self.server.receiver.stall.hold(self.headers.get("X-Nurture-Delivery", ""))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@dataclass
class CallbackReceiver:
    """Records the POSTs it receives; ``status`` is what it answers (204 by default).

    ``statuses`` (if not empty) are answered first, one per request (to test retries).
    """

    status: int = 204
    statuses: list[int] = field(default_factory=list)
    received: list[ReceivedCallback] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        #: hold the answer to one delivery (``stall.on = "<X-Nurture-Delivery>"``): it was
        #: received (recorded) but not answered until released
        self.stall = Stall()
        self._server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def record(self, received: ReceivedCallback, raw: bytes) -> int:
        with self._lock:
            self.received.append(received)
            self.bodies.append(raw)
            self._event.set()
            return self.statuses.pop(0) if self.statuses else self.status

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/sms/status") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def running_twilio() -> Iterator[FakeTwilio]:
    """Generator for a pytest fixture: a started :class:`FakeTwilio`, stopped afterwards."""
    fake = FakeTwilio().start()
    try:
        yield fake
    finally:
        fake.stop()


def running_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
