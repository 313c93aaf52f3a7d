"""The webhook channel's HTTP transport: one POST to a vetted address, and the retry backoff.

Address safety: the host is resolved and *every* address it resolves to must be public;
loopback, private (RFC 1918, unique-local), link-local (cloud metadata), carrier-grade NAT,
multicast, reserved and unspecified addresses are refused (:class:`WebhookRefused`) unless
``NURTURE_WEBHOOK_ALLOW_PRIVATE`` is true. The connection then goes to the vetted address
(the name is not resolved a second time, so a DNS answer cannot change in between), with
the original host name in ``Host`` and for TLS certificate checking. Redirects are never
followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nurture.config import TRUE_WORDS
from nurture.errors import NurtureError

MAX_BACKOFF = 10.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: swapped by tests: ``resolve(host, port) -> [ip text]``
Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


resolve: Resolver = system_resolve


class WebhookRefused(NurtureError):
    """The URL points at an address webhooks may not reach (the delivery fails)."""

    code = "webhook_refused"


def allow_private(environ: Mapping[str, str] | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get("NURTURE_WEBHOOK_ALLOW_PRIVATE", "")
    return value.strip().lower() in TRUE_WORDS


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if ip.teredo is not None:
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_addresses(host: str, addresses: list[str], *, allowed_private: bool) -> str:
    """The address to connect to, once every address of ``host`` is acceptable."""
    if not addresses:
        raise WebhookRefused(f"webhook host {host!r} does not resolve")
    parsed: list[IPAddress] = []
    for text in addresses:
        try:
            parsed.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            raise WebhookRefused(f"webhook host {host!r} resolved to {text!r}") from None
    if not allowed_private:
        for ip in parsed:
            if not is_public(ip):
                raise WebhookRefused(
                    f"webhook refused: {host} resolves to the non-public address {ip} "
                    "(set NURTURE_WEBHOOK_ALLOW_PRIVATE=true to allow private addresses)"
                )
    return str(parsed[0])


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    retry_after: str | None


def post_once(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = check_addresses(parts.hostname, resolve(parts.hostname, port), allowed_private=allow_private())
    conn_cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = conn_cls(parts.hostname, port, ip, timeout)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        text = response.read(2048).decode("utf-8", "replace")
        return Answer(response.status, text, response.getheader("Retry-After"))
    finally:
        conn.close()


def backoff(attempt: int, retry_after: str | None) -> float:
    delay = 0.5 * (2 ** (attempt - 1))
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass
    return float(min(delay, MAX_BACKOFF))
