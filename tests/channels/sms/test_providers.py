"""The HTTP (Twilio-compatible) provider against a real fake server on loopback."""

from __future__ import annotations

import socket
import time

import pytest

from nurture.channels.sms.providers import (
    CallbackRefused,
    HttpSmsProvider,
    OutboxProvider,
    SmsConfigError,
    parse_status_callback,
    provider_from_settings,
    twilio_signature,
)
from tests.fakes.twilio_server import AUTH_TOKEN, CallbackReceiver, FakeTwilio


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _provider(twilio: FakeTwilio, sleeps: Sleeps | None = None, **kw: object) -> HttpSmsProvider:
    return HttpSmsProvider(twilio.base_url, sender="+15005550006", sleep=sleeps if sleeps is not None else Sleeps(), **kw)  # type: ignore[arg-type]


def test_send_posts_the_form_with_basic_auth(twilio: FakeTwilio) -> None:
    result = _provider(twilio).send("+33612345678", "Hello ☺", status_callback="https://n.io/sms/status")
    assert result.status == "sent" and result.ok
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    (request,) = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.form == {
        "To": "+33612345678",
        "From": "+15005550006",
        "Body": "Hello ☺",
        "StatusCallback": "https://n.io/sms/status",
    }
    assert request.headers["Authorization"].startswith("Basic ")
    assert twilio.messages[result.provider_id].body == "Hello ☺"


def test_messaging_service_sid_sender(twilio: FakeTwilio) -> None:
    provider = HttpSmsProvider(twilio.base_url, sender="MG" + "2" * 32)
    assert provider.send("+33612345678", "x").ok
    assert twilio.requests[0].form["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in twilio.requests[0].form


def test_429_is_retried_honouring_retry_after(twilio: FakeTwilio) -> None:
    twilio.fail_next(429, code=20429, retry_after="3")
    sleeps = Sleeps()
    result = _provider(twilio, sleeps).send("+33612345678", "x")
    assert result.ok
    assert [r.answered for r in twilio.requests] == [429, 201]
    assert sleeps == [3.0]


def test_5xx_retried_with_exponential_backoff_then_temporary_failure(twilio: FakeTwilio) -> None:
    twilio.fail_next(500, times=10)
    sleeps = Sleeps()
    result = _provider(twilio, sleeps, max_attempts=4, backoff=0.5).send("+33612345678", "x")
    assert result.status == "temporary_failure"
    assert "after 4 attempts" in (result.reason or "")
    assert len(twilio.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_500_then_success(twilio: FakeTwilio) -> None:
    twilio.fail_next(503, times=2)
    result = _provider(twilio).send("+33612345678", "x")
    assert result.ok and len(twilio.requests) == 3


def test_4xx_is_permanent_with_the_providers_reason(twilio: FakeTwilio) -> None:
    twilio.fail_next(400, code=21610, message="Attempt to send to unsubscribed recipient")
    result = _provider(twilio).send("+33612345678", "x")
    assert result.status == "permanent_failure"
    assert result.error_code == 21610
    assert result.reason == "Attempt to send to unsubscribed recipient (error 21610)"
    assert len(twilio.requests) == 1


def test_server_side_validation_errors_are_permanent(twilio: FakeTwilio) -> None:
    result = _provider(twilio).send("0612", "x")
    assert result.status == "permanent_failure" and result.error_code == 21211
    assert "not a valid phone number" in (result.reason or "")


def test_wrong_credentials_are_permanent(twilio: FakeTwilio) -> None:
    url = twilio.base_url.replace(AUTH_TOKEN, "wrong")
    result = HttpSmsProvider(url, sender="+15005550006").send("+33612345678", "x")
    assert result.status == "permanent_failure" and result.error_code == 20003


def test_unreachable_provider_is_retried_then_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    provider = HttpSmsProvider(
        f"http://AC1:tok@127.0.0.1:{port}/2010-04-01/Accounts/AC1", sender="+1", sleep=sleeps, max_attempts=2
    )
    result = provider.send("+33612345678", "x")
    assert result.status == "temporary_failure" and "unreachable" in (result.reason or "")
    assert len(sleeps) == 1


def test_config_errors() -> None:
    with pytest.raises(SmsConfigError):
        HttpSmsProvider("ftp://a:b@h/x", sender="+1")
    with pytest.raises(SmsConfigError):
        HttpSmsProvider("https://h/2010-04-01/Accounts/AC1", sender="+1")
    with pytest.raises(SmsConfigError):
        HttpSmsProvider("https://a:b@h/2010-04-01/Accounts/a", sender="")
    assert isinstance(provider_from_settings({}), OutboxProvider)
    assert isinstance(provider_from_settings({"NURTURE_SMS_URL": "https://a:b@h/x", "NURTURE_SMS_PROVIDER": "outbox"}), OutboxProvider)
    http = provider_from_settings({"NURTURE_SMS_URL": "https://a:b@h:8443/2010-04-01/Accounts/a", "NURTURE_SMS_FROM": "+1"})
    assert isinstance(http, HttpSmsProvider)
    assert http.messages_url == "https://h:8443/2010-04-01/Accounts/a/Messages.json"
    with pytest.raises(SmsConfigError):
        provider_from_settings({"NURTURE_SMS_PROVIDER": "carrier-pigeon"})


def test_outbox_keeps_messages() -> None:
    outbox = OutboxProvider()
    first = outbox.send("+33612345678", "a", status_callback="https://n.io/s")
    second = outbox.send("+33612345679", "b")
    assert first.ok and second.ok and first.provider_id != second.provider_id
    assert [m.body for m in outbox.messages] == ["a", "b"]


# --------------------------------------------------------------------------- callbacks


def test_signature_matches_twilios_documented_example() -> None:
    # the vectors of Twilio's helper libraries (RequestValidator tests), auth token "12345"
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
                ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def _wait_for(receiver: CallbackReceiver, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(receiver.received) >= count


def test_delivered_callback_is_verified(twilio: FakeTwilio, receiver: CallbackReceiver) -> None:
    result = _provider(twilio).send("+33612345678", "x", status_callback=receiver.url("/sms/status?t=abc"))
    assert result.provider_id is not None
    assert twilio.send_status(result.provider_id, "delivered") == 204
    _wait_for(receiver, 1)
    cb = receiver.received[0]
    update = parse_status_callback(cb.url, cb.form, cb.headers.get("X-Twilio-Signature"), AUTH_TOKEN)
    assert (update.provider_id, update.status) == (result.provider_id, "delivered")
    assert update.is_delivered and not update.is_bounce


def test_failed_callback_is_a_bounce(twilio: FakeTwilio, receiver: CallbackReceiver) -> None:
    result = _provider(twilio).send("+33612345678", "x", status_callback=receiver.url())
    assert result.provider_id is not None
    twilio.send_status(result.provider_id, "undelivered", error_code="30003")
    _wait_for(receiver, 1)
    cb = receiver.received[0]
    update = parse_status_callback(cb.url, cb.form, cb.headers["X-Twilio-Signature"], AUTH_TOKEN)
    assert update.is_bounce and update.error_code == "30003"


def test_forged_or_altered_callbacks_are_refused(twilio: FakeTwilio, receiver: CallbackReceiver) -> None:
    result = _provider(twilio).send("+33612345678", "x", status_callback=receiver.url())
    assert result.provider_id is not None
    twilio.send_status(result.provider_id, "failed", forge=True)
    twilio.send_status(result.provider_id, "delivered")
    _wait_for(receiver, 2)
    forged, genuine = receiver.received
    with pytest.raises(CallbackRefused):
        parse_status_callback(forged.url, forged.form, forged.headers["X-Twilio-Signature"], AUTH_TOKEN)
    signature = genuine.headers["X-Twilio-Signature"]
    altered = dict(genuine.form, MessageStatus="failed")
    with pytest.raises(CallbackRefused):
        parse_status_callback(genuine.url, altered, signature, AUTH_TOKEN)
    with pytest.raises(CallbackRefused):
        parse_status_callback(genuine.url + "?x=1", genuine.form, signature, AUTH_TOKEN)
    with pytest.raises(CallbackRefused):
        parse_status_callback(genuine.url, genuine.form, None, AUTH_TOKEN)
    with pytest.raises(CallbackRefused):
        parse_status_callback(genuine.url, genuine.form, signature, "other-token")
    assert parse_status_callback(genuine.url, genuine.form, signature, AUTH_TOKEN).status == "delivered"


def test_default_port_variants_are_accepted() -> None:
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    sig = twilio_signature("https://n.io:443/sms/status", form, "tok")
    assert parse_status_callback("https://n.io/sms/status", form, sig, "tok").status == "delivered"
    sig = twilio_signature("https://n.io/sms/status", form, "tok")
    assert parse_status_callback("https://n.io:443/sms/status", form, sig, "tok").status == "delivered"


def test_signed_but_not_a_status_is_refused() -> None:
    form = {"Foo": "bar"}
    with pytest.raises(CallbackRefused, match="not a message status"):
        parse_status_callback("https://n.io/s", form, twilio_signature("https://n.io/s", form, "t"), "t")
