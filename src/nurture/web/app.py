"""Application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from nurture import __version__
from nurture.runtime import Runtime

log = logging.getLogger(__name__)


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

    app = FastAPI(title="Nurture", version=__version__, lifespan=lifespan)
    app.state.runtime = rt

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: database reachable and migrated; record counts for a quick look."""
        from nurture.records.service import record_counts

        try:
            rt.db.ping()
            migrated = rt.db.is_up_to_date()
            with rt.db.read() as session:
                counts = record_counts(session=session)
        except Exception:  # the probe reports, never raises
            log.exception("readiness probe failed")
            return JSONResponse({"status": "unavailable"}, 503)
        status = "ok" if migrated else "migration pending"
        return JSONResponse(
            {"status": status, "database": rt.db.dialect, "records": counts},
            200 if migrated else 503,
        )

    return app
