"""Classifying tracking hits: human, mail privacy proxy prefetch, or link scanner.

Each open or click hit is stored with its time, user agent and *IP class* (the network
prefix — /24 for IPv4, /48 for IPv6 — never the full address). :func:`classify_hit` flags:

* **machine opens** — images fetched without a person reading: Apple Mail Privacy
  Protection (a bare ``Mozilla/5.0`` user agent, or Apple's 17.0.0.0/8), known scanner or
  bot user agents, an empty user agent, or an open within ``min_open_seconds`` of sending;
* **scanner clicks** — security gateways following every link on arrival (Safe Links,
  Mimecast, Proofpoint, Barracuda…): ``HEAD`` requests, scanner / HTTP-library user agents,
  an empty user agent, or a click within ``min_click_seconds`` of sending.

Image proxies that fetch when the person opens the message (Gmail's GoogleImageProxy,
Yahoo's, Outlook's) are *not* machine opens; their ``proxy`` is reported.

:func:`fires_trigger` applies the settings: ``NURTURE_MACHINE_OPENS_FIRE`` and
``NURTURE_SCANNER_CLICKS_FIRE`` (default false: flagged hits are recorded but do not fire
``mail_open`` / ``mail_click``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from nurture.config import TRUE_WORDS

HitKind = Literal["open", "click"]

_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_BOT_UA = re.compile(
    r"bot\b|bot/|spider|crawl|slurp|python-requests|python-urllib|aiohttp|httpx|curl/|wget/|"
    r"go-http-client|java/|okhttp|libwww|apache-httpclient|headlesschrome|phantomjs|"
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|forcepoint|sophos|"
    r"fortiguard|ironport|zscaler|safelinks|scanner|linkcheck",
    re.I,
)
_PROXIES = (
    ("google", re.compile(r"GoogleImageProxy|ggpht\.com", re.I)),
    ("yahoo", re.compile(r"YahooMailProxy", re.I)),
    ("microsoft", re.compile(r"ms-office|Microsoft Outlook|Outlook-iOS|Outlook-Android", re.I)),
)


@dataclass(frozen=True)
class Hit:
    kind: HitKind
    user_agent: str | None
    ip: str | None
    at: datetime
    sent_at: datetime | None = None
    method: str = "GET"


@dataclass(frozen=True)
class HitVerdict:
    ip_class: str | None
    machine: bool  # a machine open or a scanner click
    reason: str  # why it was flagged ("" for a human hit)
    proxy: str | None = None


@dataclass(frozen=True)
class HitPolicy:
    min_open_seconds: float = 2.0
    min_click_seconds: float = 10.0
    machine_opens_fire: bool = False
    scanner_clicks_fire: bool = False

    @classmethod
    def from_settings(cls, extra: Mapping[str, str]) -> HitPolicy:
        def flag(name: str) -> bool:
            return extra.get(name, "false").strip().lower() in TRUE_WORDS

        return cls(
            machine_opens_fire=flag("NURTURE_MACHINE_OPENS_FIRE"),
            scanner_clicks_fire=flag("NURTURE_SCANNER_CLICKS_FIRE"),
        )


def ip_class(ip: str | None) -> str | None:
    """The network prefix of ``ip`` (IPv4 /24, IPv6 /48), or None when not an address."""
    if not ip:
        return None
    return _ip_facts(ip)[0]


@lru_cache(maxsize=4096)
def _ip_facts(ip: str) -> tuple[str | None, bool]:
    """``(ip_class, in Apple's network)`` of a client address (cached: hits repeat them)."""
    return _ip_class(ip), _in_apple(ip)


@lru_cache(maxsize=1024)
def _ua_facts(ua: str) -> tuple[str | None, bool]:
    """``(image proxy, bot or scanner)`` of a user agent (cached: a few agents make most hits)."""
    proxy = next((name for name, pattern in _PROXIES if pattern.search(ua)), None)
    return proxy, _BOT_UA.search(ua) is not None


def _ip_class(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _in_apple(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip.strip()) in _APPLE_NETWORK
    except ValueError:
        return False


def classify_hit(hit: Hit, policy: HitPolicy | None = None) -> HitVerdict:
    policy = policy or HitPolicy()
    ua = (hit.user_agent or "").strip()
    klass, apple = _ip_facts(hit.ip) if hit.ip else (None, False)
    proxy, bot = _ua_facts(ua) if ua else (None, False)
    elapsed = (hit.at - hit.sent_at).total_seconds() if hit.sent_at is not None else None
    if elapsed is not None and elapsed < 0:
        # A hit before the recorded send time (clock skew between machines, simulated time):
        # its timing says nothing, so it is not judged "too soon after sending".
        elapsed = None

    def verdict(reason: str) -> HitVerdict:
        return HitVerdict(klass, bool(reason), reason, proxy)

    if not ua:
        return verdict("no user agent")
    if hit.kind == "open":
        if ua == "Mozilla/5.0" or apple:
            return HitVerdict(klass, True, "Apple Mail Privacy Protection prefetch", "apple")
        if bot:
            return verdict("bot or scanner user agent")
        if elapsed is not None and elapsed < policy.min_open_seconds:
            return verdict(f"opened {elapsed:.1f}s after sending")
        return verdict("")
    if hit.method.upper() == "HEAD":
        return verdict("HEAD request")
    if bot:
        return verdict("bot or scanner user agent")
    if elapsed is not None and elapsed < policy.min_click_seconds:
        return verdict(f"clicked {elapsed:.1f}s after sending")
    return verdict("")


def fires_trigger(kind: HitKind, verdict: HitVerdict, policy: HitPolicy | None = None) -> bool:
    """Whether this hit fires ``mail_open`` / ``mail_click`` children."""
    policy = policy or HitPolicy()
    if not verdict.machine:
        return True
    return policy.machine_opens_fire if kind == "open" else policy.scanner_clicks_fire
