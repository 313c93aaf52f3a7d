"""One personalised, tracked message: template + record + trace → :class:`OutgoingEmail`.

This is the seam the engine's ``email`` executor calls for each due trace (after its own
still-born checks: blacklist, opt-out, duplicates). Steps:

1. the address is checked (:func:`check_address`: missing or invalid → :class:`Unsendable`
   with Odoo's failure types ``mail_email_missing`` / ``mail_email_invalid``);
2. the per-trace URLs are signed (open pixel, unsubscribe, web version);
3. the template is rendered with ``unsubscribe_url``/``view_url``; every trackable link is
   stored through ``store_link(url_with_utm) -> link id`` and replaced by a signed click URL
   for this trace (the unsubscribe and web-version links are not counted as clicks); an
   unsubscribe footer is added when the template has no unsubscribe link; the open pixel
   is appended; the text part is derived after all that, so its links are tracked too;
4. the MIME message is built with the Message-ID / VERP token of the trace, RFC 8058
   ``List-Unsubscribe`` headers (the one-click POST goes to the unsubscribe URL), and the
   bulk headers.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from nurture.channels.email.links import Utm, add_open_pixel, rewrite_links
from nurture.channels.email.mime import MessageSpec, OutgoingEmail, Unsubscribe, build_message
from nurture.channels.email.templates import CompiledTemplate, RecordProxy, RenderedEmail
from nurture.config import Settings
from nurture.records.validation import InvalidEmail, normalize_email
from nurture.tracking.tokens import KIND_UNSUBSCRIBE, TokenSigner, message_token
from nurture.tracking.urls import CLICK_PREFIX, TraceUrls, click_url

StoreLink = Callable[[str], int]

FAILURE_EMAIL_MISSING = "mail_email_missing"
FAILURE_EMAIL_INVALID = "mail_email_invalid"


class Unsendable(ValueError):
    """The message cannot be sent; ``failure_type`` is the trace's failure type."""

    def __init__(self, failure_type: str, message: str) -> None:
        super().__init__(message)
        self.failure_type = failure_type


def check_address(value: str | None) -> tuple[str, str]:
    """``(address as written, normalised address)``, or :class:`Unsendable`.

    The message goes to the address as written (a local part may be case-sensitive); the
    normalised form (lower-cased) is what duplicate and blacklist checks compare.
    """
    if value is None or not value.strip():
        raise Unsendable(FAILURE_EMAIL_MISSING, "no email address")
    text = value.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1].strip()
    try:
        normalized = normalize_email(text)
    except (InvalidEmail, ValueError) as exc:
        raise Unsendable(FAILURE_EMAIL_INVALID, f"invalid email address: {exc}") from None
    if any(c in text for c in "\r\n<>,;\"") or " " in text:
        raise Unsendable(FAILURE_EMAIL_INVALID, "invalid email address")
    return text, normalized


@dataclass(frozen=True)
class SenderIdentity:
    """Who sends, and where tracking and bounces go."""

    from_addr: str  # "Acme News <news@news.example.com>"
    base_url: str  # public URL of the Nurture server (tracking links)
    mail_domain: str  # domain of Message-IDs and the VERP return path
    reply_to: str | None = None
    bounce_local: str = "bounce"
    unsubscribe_local: str | None = "unsubscribe"  # mailto:unsubscribe+<token>@mail_domain

    @classmethod
    def from_settings(
        cls, settings: Settings, *, from_addr: str, reply_to: str | None = None
    ) -> SenderIdentity:
        """``NURTURE_MAIL_DOMAIN`` (default: the host of ``NURTURE_BASE_URL``) and
        ``NURTURE_BOUNCE_LOCAL`` (default ``bounce``) complete the mailing's own sender."""
        domain = settings.extra.get("NURTURE_MAIL_DOMAIN", "").strip()
        if not domain:
            domain = urlsplit(settings.base_url).hostname or "localhost"
        return cls(
            from_addr=from_addr,
            base_url=settings.base_url,
            mail_domain=domain,
            reply_to=reply_to,
            bounce_local=settings.extra.get("NURTURE_BOUNCE_LOCAL", "bounce").strip() or "bounce",
        )


@dataclass(frozen=True)
class ComposedEmail:
    outgoing: OutgoingEmail
    rendered: RenderedEmail
    to_addr: str  # normalised
    links: dict[str, int]  # stored URL (with UTM) -> link id
    urls: TraceUrls


_BODY_CLOSE = re.compile(r"</body\s*>", re.I)


def _unsubscribe_footer(url: str) -> str:
    href = html_lib.escape(url, quote=True)
    return (
        '<p style="font-size:12px;color:#888888;text-align:center;margin:24px 0 0 0">'
        f'<a href="{href}" style="color:#888888">Unsubscribe</a></p>'
    )


def ensure_unsubscribe_link(html: str, url: str) -> str:
    """Add an unsubscribe footer before ``</body>`` when ``url`` is not linked yet."""
    if html_lib.escape(url, quote=True) in html or url in html:
        return html
    footer = _unsubscribe_footer(url)
    matches = list(_BODY_CLOSE.finditer(html))
    if not matches:
        return html + footer
    at = matches[-1].start()
    return html[:at] + footer + html[at:]


def compose_email(
    template: CompiledTemplate,
    record: Any,
    *,
    to_addr: str | None,
    trace_id: int,
    signer: TokenSigner,
    identity: SenderIdentity,
    store_link: StoreLink,
    utm: Utm | None = None,
    date: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> ComposedEmail:
    address, normalized = check_address(to_addr)
    base = identity.base_url.rstrip("/")
    urls = TraceUrls.build(base, signer, trace_id)
    links: dict[str, int] = {}
    tracked: dict[str, str] = {}  # original URL -> tracked URL, for the text part

    def shorten(url: str) -> str:
        if url not in links:
            links[url] = store_link(url)
        return click_url(base, signer, links[url], trace_id)

    def rewrite(html: str) -> str:
        html = ensure_unsubscribe_link(html, urls.unsubscribe)
        html = rewrite_links(
            html,
            shorten,
            utm=utm,
            skip_urls={urls.unsubscribe, urls.view},
            skip_prefixes=(f"{base}{CLICK_PREFIX}",),
            mapping=tracked,
        )
        return add_open_pixel(html, urls.open)

    rendered = template.render(
        record,
        context={"unsubscribe_url": urls.unsubscribe, "view_url": urls.view},
        link_rewriter=rewrite,
        text_links=tracked.get,
    )
    if urls.unsubscribe not in rendered.text:  # the footer added to the HTML, in text form
        rendered = replace(rendered, text=f"{rendered.text}\nUnsubscribe: {urls.unsubscribe}\n")
    mailto = None
    if identity.unsubscribe_local:
        unsub_token = signer.sign(KIND_UNSUBSCRIBE, trace_id, encoding="mail")
        mailto = f"{identity.unsubscribe_local}+{unsub_token}@{identity.mail_domain}"
    to_display = _display_name(record, template)
    outgoing = build_message(
        MessageSpec(
            from_addr=identity.from_addr,
            to_addr=f"{to_display} <{address}>" if to_display else address,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            token=message_token(signer, trace_id),
            domain=identity.mail_domain,
            reply_to=identity.reply_to,
            unsubscribe=Unsubscribe(urls.unsubscribe, mailto),
            bulk=True,
            date=date,
            bounce_local=identity.bounce_local,
            headers=extra_headers or {},
        )
    )
    return ComposedEmail(outgoing, rendered, normalized, links, urls)


def _display_name(record: Any, template: CompiledTemplate) -> str:
    """The record's display name for the To header (quoted by the email package)."""
    name = str(RecordProxy(template.registry, template.model, record)).strip()
    name = " ".join(name.split())
    if not name or "@" in name or any(c in name for c in "<>\"\\"):
        return ""
    return _quote_display(name)


def _quote_display(name: str) -> str:
    if re.fullmatch(r"[\w .'-]+", name, re.UNICODE) and "," not in name:
        return name
    return '"' + name + '"'
