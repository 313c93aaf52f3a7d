"""Application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from nurture import __version__
from nurture.runtime import Runtime


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(title="Nurture", version=__version__)
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
        except Exception as exc:  # the probe reports, never raises
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        status = "ok" if migrated else "migration pending"
        return JSONResponse(
            {"status": status, "database": rt.db.dialect, "records": counts},
            200 if migrated else 503,
        )

    return app
