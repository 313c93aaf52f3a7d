"""Composition end to end: template + record + trace → tracked MIME → SMTP → bounce/reply."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from nurture.channels.email.compose import (
    FAILURE_EMAIL_INVALID,
    FAILURE_EMAIL_MISSING,
    SenderIdentity,
    Unsendable,
    check_address,
    compose_email,
    ensure_unsubscribe_link,
)
from nurture.channels.email.inbound import InboundKind, parse_inbound
from nurture.channels.email.links import Utm
from nurture.channels.email.transports import SmtpTransport
from nurture.templating import EmailTemplate, compile_template
from nurture.tracking.tokens import (
    KIND_CLICK,
    KIND_MESSAGE,
    KIND_OPEN,
    KIND_UNSUBSCRIBE,
    TokenSigner,
)
from nurture.tracking.urls import (
    CLICK_PREFIX,
    KIND_VIEW,
    OPEN_PREFIX,
    UNSUBSCRIBE_PREFIX,
    VIEW_PREFIX,
    token_from_path,
)

from .smtp_sink import Sink, free_port

SIGNER = TokenSigner("compose-test-secret-0123456")
IDENTITY = SenderIdentity(
    from_addr="Acme News <news@news.example.com>",
    base_url="https://nurture.example.com/",
    mail_domain="news.example.com",
    reply_to="Acme Support <support@acme.example>",
)
TEMPLATE = compile_template(
    "contact",
    EmailTemplate(
        subject="{{ record.name | default('Hello') }}, spring sale",
        preview="20% off everything",
        html="""<html><head><style>.btn{background:#0a0}</style></head><body>
<p>Hi {{ record.name | default('there') }},</p>
<p><a class="btn" href="https://shop.example/sale?ref=mail">Shop now</a>
<a href="https://shop.example/sale?ref=mail">again</a> <a href="https://blog.example/">Blog</a>
<a href="mailto:help@acme.example">Help</a></p>
<p><a href="{{ view_url }}">View online</a> · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>""",
    ),
)
UTM = Utm("Spring 2026", "email", "Newsletter")


class LinkStore:
    def __init__(self) -> None:
        self.urls: dict[int, str] = {}

    def __call__(self, url: str) -> int:
        for link_id, stored in self.urls.items():
            if stored == url:
                return link_id
        link_id = 100 + len(self.urls)
        self.urls[link_id] = url
        return link_id


def hrefs(html: str) -> list[str]:
    return [m.replace("&amp;", "&") for m in re.findall(r'href="([^"]+)"', html)]


def test_compose_tracks_links_pixel_and_unsubscribe() -> None:
    store = LinkStore()
    composed = compose_email(
        TEMPLATE, {"name": "Ann"}, to_addr="Ann.Smith@Example.com", trace_id=42,
        signer=SIGNER, identity=IDENTITY, store_link=store, utm=UTM,
    )
    html = composed.rendered.html
    assert composed.to_addr == "ann.smith@example.com"
    assert composed.outgoing.recipients == ("Ann.Smith@Example.com",)  # sent as written
    # two distinct trackable URLs stored, with UTM; mailto untouched
    assert sorted(store.urls.values()) == [
        "https://blog.example/?utm_campaign=Spring%202026&utm_medium=email&utm_source=Newsletter",
        "https://shop.example/sale?ref=mail&utm_campaign=Spring%202026&utm_medium=email&utm_source=Newsletter",
    ]
    assert composed.links == {url: link_id for link_id, url in store.urls.items()}
    links = hrefs(html)
    clicks = [h for h in links if urlsplit(h).path.startswith(CLICK_PREFIX)]
    assert len(clicks) == 3
    for href in clicks:
        token = token_from_path(urlsplit(href).path, CLICK_PREFIX)
        assert token is not None
        data = SIGNER.verify(token, kind=KIND_CLICK)
        assert data is not None and data.ids[1] == 42 and data.ids[0] in store.urls
    assert "mailto:help@acme.example" in links
    # unsubscribe and view links are signed, not rewritten as clicks
    unsub = composed.urls.unsubscribe
    assert unsub in links and composed.urls.view in links
    unsub_token = token_from_path(urlsplit(unsub).path, UNSUBSCRIBE_PREFIX)
    assert unsub_token and SIGNER.verify(unsub_token, kind=KIND_UNSUBSCRIBE).ids == (42,)  # type: ignore[union-attr]
    view_token = token_from_path(urlsplit(composed.urls.view).path, VIEW_PREFIX)
    assert view_token and SIGNER.verify(view_token, kind=KIND_VIEW) is not None
    # open pixel
    pixel = re.search(r'<img src="([^"]+)"[^>]*width="1"', html)
    assert pixel is not None
    open_token = token_from_path(urlsplit(pixel.group(1)).path, OPEN_PREFIX, ".gif")
    assert open_token and SIGNER.verify(open_token, kind=KIND_OPEN).ids == (42,)  # type: ignore[union-attr]
    # text part has tracked links, not raw ones, and no pixel
    text = composed.rendered.text
    assert CLICK_PREFIX in text and "https://shop.example" not in text and OPEN_PREFIX not in text
    assert "Unsubscribe" in text
    # headers
    msg = composed.outgoing.message
    assert msg["List-Unsubscribe"].startswith(f"<{unsub}>, <mailto:unsubscribe+")
    assert msg["Reply-To"] == "Acme Support <support@acme.example>"
    assert str(msg["To"]) == "Ann <Ann.Smith@Example.com>"
    mailto = re.search(r"<mailto:([^?>]+)\?subject=unsubscribe>", msg["List-Unsubscribe"])
    assert mailto is not None
    request = parse_inbound(f"From: ann.smith@example.com\nTo: {mailto.group(1)}\nSubject: unsubscribe\n\n", SIGNER)
    assert (request.kind, request.trace_id) == (InboundKind.UNSUBSCRIBE, 42)
    assert composed.outgoing.envelope_from.startswith("bounce+")
    verp_token = composed.outgoing.envelope_from.split("+", 1)[1].split("@")[0]
    assert SIGNER.verify(verp_token, kind=KIND_MESSAGE).ids == (42,)  # type: ignore[union-attr]


def test_unsubscribe_footer_added_when_missing() -> None:
    template = compile_template("contact", EmailTemplate("s", "<p>No unsubscribe link here</p>"))
    composed = compose_email(
        template, None, to_addr="x@example.com", trace_id=1, signer=SIGNER, identity=IDENTITY, store_link=LinkStore(),
    )
    assert composed.urls.unsubscribe in hrefs(composed.rendered.html)
    assert "Unsubscribe" in composed.rendered.text
    assert ensure_unsubscribe_link('<a href="https://u/1">x</a>', "https://u/1") == '<a href="https://u/1">x</a>'


@pytest.mark.parametrize(
    ("value", "failure"),
    [(None, FAILURE_EMAIL_MISSING), ("  ", FAILURE_EMAIL_MISSING), ("not-an-address", FAILURE_EMAIL_INVALID),
     ("a@b", FAILURE_EMAIL_INVALID), ("a@example.com\r\nBcc: x@y.z", FAILURE_EMAIL_INVALID),
     ("a b@example.com", FAILURE_EMAIL_INVALID)],
)
def test_unsendable_addresses(value: str | None, failure: str) -> None:
    with pytest.raises(Unsendable) as info:
        check_address(value)
    assert info.value.failure_type == failure


def test_check_address_accepts_display_form() -> None:
    assert check_address("Jane <Jane@Example.COM>") == ("Jane@Example.COM", "jane@example.com")


@pytest.mark.parametrize("name", ["Doe, Jane", "Zoë Ünïcode", 'Evil " <x@y.z>', "O'Brien"])
def test_display_names_are_safe(name: str) -> None:
    composed = compose_email(
        TEMPLATE, {"name": name}, to_addr="jane@example.com", trace_id=3,
        signer=SIGNER, identity=IDENTITY, store_link=LinkStore(),
    )
    raw = composed.outgoing.as_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in msg["To"].addresses] == ["jane@example.com"]


def test_end_to_end_smtp_bounce_and_reply() -> None:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
        for trace_id, addr in ((7, "ann@example.org"), (8, "bob@example.org")):
            composed = compose_email(
                TEMPLATE, {"name": addr.split("@")[0]}, to_addr=addr, trace_id=trace_id,
                signer=SIGNER, identity=IDENTITY, store_link=LinkStore(), utm=UTM,
            )
            out = composed.outgoing
            result = transport.send(out.message, envelope_from=out.envelope_from, recipients=list(out.recipients))
            assert result.ok, result
        transport.close()
    finally:
        controller.stop()
    assert transport.connections_opened == 1 and len(sink.received) == 2
    delivered = sink.received[0]
    msg = email.message_from_bytes(delivered.content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "ann, spring sale"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'style="background: #0a0;"' in html and CLICK_PREFIX in html

    # a Postfix-style DSN sent back to the VERP envelope sender
    dsn = f"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {delivered.mail_from}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

<ann@example.org>: host mx.example.org said: 550 5.1.1 User unknown

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; ann@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--B
Content-Type: text/rfc822-headers

Message-ID: {msg["Message-ID"]}
Subject: ann, spring sale

--B--
"""
    bounce = parse_inbound(dsn, SIGNER)
    assert (bounce.kind, bounce.trace_id, bounce.hard, bounce.status) == (InboundKind.BOUNCE, 7, True, "5.1.1")

    reply = f"""From: Bob <bob@example.org>
To: support@acme.example
Subject: Re: bob, spring sale
In-Reply-To: {email.message_from_bytes(sink.received[1].content)["Message-ID"]}

Interested!
"""
    result = parse_inbound(reply, SIGNER)
    assert (result.kind, result.trace_id, result.sender) == (InboundKind.REPLY, 8, "bob@example.org")


def test_sender_identity_from_settings(tmp_path: object) -> None:
    from nurture.config import load_settings

    base = {"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "k" * 20,
            "NURTURE_BASE_URL": "https://mail.acme.example:8443/"}
    identity = SenderIdentity.from_settings(load_settings(base), from_addr="a@acme.example")
    assert (identity.mail_domain, identity.base_url, identity.bounce_local) == (
        "mail.acme.example", "https://mail.acme.example:8443", "bounce")
    identity = SenderIdentity.from_settings(
        load_settings({**base, "NURTURE_MAIL_DOMAIN": "bounces.acme.example", "NURTURE_BOUNCE_LOCAL": "ret"}),
        from_addr="a@acme.example",
    )
    assert (identity.mail_domain, identity.bounce_local) == ("bounces.acme.example", "ret")
