"""Tracking hits: IP class, machine opens, scanner clicks, trigger policy; URL helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nurture.tracking.hits import Hit, HitPolicy, classify_hit, fires_trigger, ip_class
from nurture.tracking.tokens import TokenSigner
from nurture.tracking.urls import OPEN_PREFIX, TraceUrls, click_url, token_from_path

SENT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def hit(kind: str, ua: str | None, ip: str | None = "203.0.113.9", after: float = 3600, method: str = "GET") -> Hit:
    return Hit(kind, ua, ip, SENT + timedelta(seconds=after), SENT, method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("203.0.113.77", "203.0.113.0/24"), ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
     ("::ffff:198.51.100.4", "198.51.100.0/24"), ("not-an-ip", None), (None, None), ("", None)],
)
def test_ip_class(ip: str | None, expected: str | None) -> None:
    assert ip_class(ip) == expected


def test_human_open_and_click() -> None:
    for kind in ("open", "click"):
        verdict = classify_hit(hit(kind, CHROME))
        assert not verdict.machine and verdict.reason == "" and verdict.ip_class == "203.0.113.0/24"
        assert fires_trigger(kind, verdict)  # type: ignore[arg-type]


def test_gmail_proxy_open_is_human() -> None:
    verdict = classify_hit(hit("open", GMAIL, "66.249.84.1"))
    assert not verdict.machine and verdict.proxy == "google"


@pytest.mark.parametrize("kind", ["open", "click"])
def test_hit_before_recorded_send_time_is_not_too_soon(kind: str) -> None:
    """Clock skew or simulated time: a hit "before" sending says nothing about its timing."""
    for after in (-1.0, -3600.0):
        verdict = classify_hit(hit(kind, CHROME, after=after))
        assert not verdict.machine and verdict.reason == ""
        assert fires_trigger(kind, verdict)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ua", "ip", "after"),
    [("Mozilla/5.0", "104.28.1.2", 3600), (CHROME, "17.58.1.1", 3600), ("", "203.0.113.1", 3600),
     ("python-requests/2.32", "203.0.113.1", 3600), (CHROME, "203.0.113.1", 0.5)],
)
def test_machine_opens(ua: str, ip: str, after: float) -> None:
    verdict = classify_hit(hit("open", ua, ip, after))
    assert verdict.machine and verdict.reason
    assert not fires_trigger("open", verdict)
    assert fires_trigger("open", verdict, HitPolicy(machine_opens_fire=True))


@pytest.mark.parametrize(
    ("ua", "after", "method"),
    [(CHROME, 3600, "HEAD"), ("Mozilla/5.0 (compatible; Barracuda Sentinel)", 3600, "GET"),
     ("curl/8.5.0", 3600, "GET"), (CHROME, 3, "GET"), (None, 3600, "GET")],
)
def test_scanner_clicks(ua: str | None, after: float, method: str) -> None:
    verdict = classify_hit(hit("click", ua, after=after, method=method))
    assert verdict.machine
    assert not fires_trigger("click", verdict)
    assert fires_trigger("click", verdict, HitPolicy(scanner_clicks_fire=True))


def test_policy_from_settings() -> None:
    policy = HitPolicy.from_settings({"NURTURE_MACHINE_OPENS_FIRE": "true"})
    assert policy.machine_opens_fire and not policy.scanner_clicks_fire
    assert not HitPolicy.from_settings({}).machine_opens_fire


def test_urls_and_token_paths() -> None:
    signer = TokenSigner("urls-test-secret-0123456789")
    urls = TraceUrls.build("https://n.example.com/", signer, 5)
    assert urls.open.startswith("https://n.example.com/t/o/") and urls.open.endswith(".gif")
    token = token_from_path(urls.open.removeprefix("https://n.example.com"), OPEN_PREFIX, ".gif")
    assert token is not None and signer.verify(token, kind="open") is not None
    assert token_from_path("/t/o/abc", OPEN_PREFIX, ".gif") is None
    assert token_from_path("/x/abc", OPEN_PREFIX) is None
    assert token_from_path(OPEN_PREFIX, OPEN_PREFIX) is None
    assert click_url("https://n.example.com", signer, 3, 5).startswith("https://n.example.com/t/c/")
