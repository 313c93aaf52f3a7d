"""Operations endpoints: ``/metrics`` (Prometheus) and the broker part of ``/readyz``.

``/metrics`` answers clients on loopback (a Prometheus agent on the same machine, or a
reverse proxy that restricts it) and, when ``NURTURE_METRICS_TOKEN`` is set, any client
presenting ``Authorization: Bearer <token>``. Everyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from fastapi import FastAPI, Request, Response

from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def _allowed(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker_status(rt: Runtime) -> str | None:
    """"ok"/"unreachable" for the configured broker; None without one (embedded)."""
    if not rt.settings.extra.get("NURTURE_BROKER_URL"):
        return None
    from nurture.jobs.app import broker_ping

    return "ok" if broker_ping() else "unreachable"


def install_ops(app: FastAPI, rt: Runtime) -> None:
    token = rt.settings.extra.get("NURTURE_METRICS_TOKEN", "").strip()

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics (text exposition format)."""
        if not _allowed(request, token):
            return Response("metrics: loopback or NURTURE_METRICS_TOKEN only\n", 403, media_type="text/plain")
        from nurture.metrics import render

        body, content_type = render(rt.db)
        return Response(body, media_type=content_type)
