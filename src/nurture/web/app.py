"""Application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from nurture import __version__
from nurture.records.service import record_counts
from nurture.runtime import Runtime
from nurture.web.api import install_api
from nurture.web.ops import broker_status, install_ops
from nurture.web.security.install import install_security
from nurture.web.tracking import router as tracking_router
from nurture.web.ui import install_ui

log = logging.getLogger(__name__)

API_DESCRIPTION = (
    "Marketing automation server. The REST API lives under `/api/v1`; authenticate with "
    "`Authorization: Bearer <token>` (create one with `nurture token create --user <login>`). "
    'Errors: `{"error": {"code": "...", "message": "...", "field": "..."}}`.'
)
# The interactive docs (Swagger UI) load their script and styles from a CDN and start with
# an inline script: only the /docs page gets this looser policy.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


class BackgroundRunner(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


def create_app(rt: Runtime, *, runner: BackgroundRunner | None = None) -> FastAPI:
    """Build the ASGI app; ``runner`` (the in-process worker) lives as long as the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runner is not None:
            runner.start()
            log.info("in-process worker started")
        try:
            yield
        finally:
            if runner is not None:
                # Graceful stop: the runner finishes its batch and releases its leases.
                runner.stop()
                log.info("in-process worker stopped")
            rt.db.dispose()

    app = FastAPI(
        title="Nurture",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = rt
    install_security(app, rt.settings, csp_overrides={"/docs": DOCS_CSP})
    install_api(app)
    install_ui(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers (on the event loop: no threadpool slot needed)."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: database reachable and migrated; record counts for a quick look."""
        try:
            rt.db.ping()
            migrated = rt.db.is_up_to_date()
            with rt.db.read() as session:
                counts = record_counts(session=session)
        except Exception:  # the probe reports, never raises
            log.exception("readiness probe failed")
            return JSONResponse({"status": "unavailable"}, 503)
        broker = broker_status(rt)  # None: embedded, no broker to check
        status = "ok" if migrated else "migration pending"
        if broker not in (None, "ok"):
            status = "broker unreachable"
        body: dict[str, Any] = {"status": status, "database": rt.db.dialect, "records": counts}
        if broker is not None:
            body["broker"] = broker
        return JSONResponse(body, 200 if status == "ok" else 503)

    install_ops(app, rt)

    app.include_router(tracking_router)
    return app
