"""The SMS channel's per-process context (:class:`~nurture.channels.context.ChannelContext`):
the signer, the base URL of short links and status callbacks, the opt-out text."""

from __future__ import annotations

from dataclasses import dataclass

from nurture.channels.context import ChannelContext
from nurture.config import Settings
from nurture.tracking.tokens import TokenSigner

KIND_SMS_CLICK = "sclick"  # SMS short link: ids = (link id, trace id)
KIND_SMS_STATUS = "sstatus"  # delivery-status callback URL: ids = (trace id,)
SMS_CLICK_PREFIX = "/t/s/"
SMS_STATUS_PREFIX = "/t/sms/status/"
DEFAULT_OPT_OUT_TEXT = "Reply STOP to opt out"



@dataclass
class SmsContext:
    """What the channel needs from the process settings."""

    settings: Settings
    signer: TokenSigner
    base_url: str
    opt_out_text: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsContext:
        extra = settings.extra
        return cls(
            settings=settings,
            signer=TokenSigner.from_settings(settings),
            base_url=settings.base_url.rstrip("/"),
            opt_out_text=extra.get("NURTURE_SMS_OPT_OUT_TEXT", "").strip() or DEFAULT_OPT_OUT_TEXT,
        )

    def click_url(self, link_id: int, trace_id: int) -> str:
        return f"{self.base_url}{SMS_CLICK_PREFIX}{self.signer.sign(KIND_SMS_CLICK, link_id, trace_id)}"

    def status_callback_url(self, trace_id: int) -> str:
        return f"{self.base_url}{SMS_STATUS_PREFIX}{self.signer.sign(KIND_SMS_STATUS, trace_id)}"


#: the SMS channel's context in this process (the provider follows it, :mod:`.delivery`)
SMS: ChannelContext[SmsContext] = ChannelContext(SmsContext.from_settings)
#: use these settings for the SMS channel of this process (servers, CLI, tests)
configure = SMS.configure
#: the configured context, or one from the environment's settings on first use
sms_context = SMS.context
#: forget the configured context and provider (tests)
reset = SMS.reset
