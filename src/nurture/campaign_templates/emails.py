"""Default copy of the templates' emails: short, personal, one clear call to action.

Every link is tracked when sent; ``%WEBSITE%`` becomes the website given when the campaign
is created. The unsubscribe link is added by the sender (``unsubscribe_url``).
"""

from __future__ import annotations

from nurture.campaign_templates.spec import WEBSITE, EmailSpec

_STYLE = (
    "<style>"
    "body{font-family:Arial,Helvetica,sans-serif;color:#1f2933;line-height:1.5}"
    ".card{max-width:560px;margin:0 auto;padding:24px}"
    ".cta{display:inline-block;padding:12px 24px;background:#714b67;color:#ffffff;"
    "text-decoration:none;border-radius:4px;font-weight:bold}"
    ".foot{font-size:12px;color:#7b8794}"
    "</style>"
)


def _page(body: str) -> str:
    return (
        f'<html><head>{_STYLE}</head><body><div class="card">{body}'
        '<p class="foot">You receive this email because you are in touch with us. '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
        "</div></body></html>"
    )


def _button(url: str, label: str) -> str:
    return f'<p><a class="cta" href="{url}">{label}</a></p>'


WELCOME_CONTACT = EmailSpec(
    subject="Welcome, {{ record.name | default('and thank you') }}!",
    preview="A quick hello, and where to start.",
    body_html=_page(
        "<p>Hello {{ record.name | default('there') }},</p>"
        "<p>Thank you for getting in touch. We help teams like yours do more with less effort, "
        "and we are glad to have you with us.</p>"
        "<p>The best place to start is our selection of the products our customers like most.</p>"
        + _button(f"{WEBSITE}/shop", "Discover our products")
        + "<p>See you soon,<br>The team</p>"
    ),
)

WELCOME_SUBSCRIBER = EmailSpec(
    subject="Welcome to our newsletter, {{ record.name | default('new reader') }}",
    preview="Here is what to expect from us.",
    body_html=_page(
        "<p>Hello {{ record.name | default('there') }},</p>"
        "<p>Thank you for subscribing! Once a month you will receive our news, tips and the "
        "offers we keep for subscribers. No spam, and you can leave at any time.</p>"
        + _button(f"{WEBSITE}/blog", "Read the latest news")
        + "<p>Happy reading,<br>The team</p>"
    ),
    mailing_list="Newsletter",
)

CONFIRMATION = EmailSpec(
    subject="Please confirm your subscription",
    preview="One click and you are in.",
    body_html=_page(
        "<p>Hello {{ record.name | default('there') }},</p>"
        "<p>You asked to receive our newsletter at {{ record.email }}. "
        "Please confirm that this is what you want: we will only write to you once you do.</p>"
        + _button(f"{WEBSITE}/newsletter/confirmed", "Yes, subscribe me")
        + "<p>If you did not ask for it, simply ignore this email.</p>"
    ),
    mailing_list="Newsletter",
)

_LEAD_HELLO = "<p>Hello {{ record.contact.name | default('there') }},</p>"
_LEAD_SIGNATURE = (
    "<p>Best regards,<br>{{ record.salesperson.name | default('The sales team') }}</p>"
)

FREE_CATALOG = EmailSpec(
    subject="Your free catalog is ready",
    preview="Our full range, with prices, in one place.",
    body_html=_page(
        _LEAD_HELLO
        + "<p>Thank you for your interest. As promised, here is our catalog: the whole range, "
        "with prices and availability, so you can find what fits your needs.</p>"
        + _button(f"{WEBSITE}/catalog", "Get the free catalog")
        + "<p>Questions? Just reply to this email.</p>"
        + _LEAD_SIGNATURE
    ),
)

REMINDER = EmailSpec(
    subject="Did you see your free catalog?",
    preview="Your catalog is still waiting for you.",
    body_html=_page(
        _LEAD_HELLO
        + "<p>A few days ago we sent you our catalog, and we would not want it to get lost in "
        "your inbox. It is still available, free of charge.</p>"
        + _button(f"{WEBSITE}/catalog", "Open the catalog")
        + _LEAD_SIGNATURE
    ),
)

SPECIAL_OFFER = EmailSpec(
    subject="A special offer, just for you",
    preview="15% off your first order, this week only.",
    body_html=_page(
        _LEAD_HELLO
        + "<p>Thank you for taking a look at our catalog. To help you make up your mind, here is "
        "<strong>15% off your first order</strong>, valid for seven days.</p>"
        + _button(f"{WEBSITE}/offer", "Claim my 15% discount")
        + _LEAD_SIGNATURE
    ),
)

HOT_LEAD = EmailSpec(
    subject="Thanks for your interest: let's talk",
    preview="A few minutes to understand your needs.",
    body_html=_page(
        _LEAD_HELLO
        + "<p>Thank you for your interest in our products. We would love to understand what you "
        "need and show you how we can help.</p>"
        + _button(f"{WEBSITE}/appointment", "Book a call with us")
        + _LEAD_SIGNATURE
    ),
)

# the demo welcome flow's follow-ups (nurture.demo.history)
GETTING_STARTED = EmailSpec(
    subject="Three things to try this week, {{ record.name | default('friend') }}",
    preview="Our readers' favourite guides.",
    body_html=_page(
        "<p>Hello {{ record.name | default('there') }},</p>"
        "<p>Thanks for reading our welcome email! Here are the three guides our readers "
        "like most: planning a campaign, writing subject lines that get opened, and "
        "measuring what works.</p>"
        + _button(f"{WEBSITE}/guides", "Open the guides")
        + "<p>Reply to this email if you have a question: a person reads every answer.</p>"
        "<p>The team</p>"
    ),
    mailing_list="Newsletter",
)

STILL_INTERESTED = EmailSpec(
    subject="Did you see our welcome, {{ record.name | default('new reader') }}?",
    preview="Your subscriber offer is waiting.",
    body_html=_page(
        "<p>Hello {{ record.name | default('there') }},</p>"
        "<p>You subscribed to our newsletter a few days ago; in case our welcome email got "
        "lost, here is the offer we keep for new subscribers.</p>"
        + _button(f"{WEBSITE}/offer", "See the offer")
        + "<p>The team</p>"
    ),
    mailing_list="Newsletter",
)
