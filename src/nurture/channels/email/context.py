"""The email channel's per-process context (:class:`~nurture.channels.context.ChannelContext`):
the signer and the sender identity, from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from nurture.channels.context import ChannelContext
from nurture.channels.email.compose import SenderIdentity
from nurture.channels.email.models import EmailTemplate
from nurture.config import Settings
from nurture.tracking.tokens import TokenSigner


@dataclass
class EmailContext:
    """What the channel needs from the process settings (signer, sender identity)."""

    settings: Settings
    signer: TokenSigner
    default_from: str
    keep_sent_source: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailContext:
        extra = settings.extra
        domain = extra.get("NURTURE_MAIL_DOMAIN", "").strip() or (
            urlsplit(settings.base_url).hostname or "localhost"
        )
        default_from = extra.get("NURTURE_MAIL_FROM", "").strip() or f"Nurture <noreply@{domain}>"
        keep = extra.get("NURTURE_MAIL_KEEP_SENT_SOURCE", "").strip().lower()
        return cls(
            settings=settings,
            signer=TokenSigner.from_settings(settings),
            default_from=default_from,
            keep_sent_source=keep not in {"0", "false", "no", "off"},
        )

    def identity(self, template: EmailTemplate) -> SenderIdentity:
        return SenderIdentity.from_settings(
            self.settings,
            from_addr=template.from_addr or self.default_from,
            reply_to=template.reply_to or None,
        )


#: the email channel's context in this process (the transport follows it, :mod:`.delivery`)
EMAIL: ChannelContext[EmailContext] = ChannelContext(EmailContext.from_settings)
#: use these settings for the email channel of this process (servers, CLI, tests)
configure = EMAIL.configure
#: the configured context, or one from the environment's settings on first use
email_context = EMAIL.context
