"""The demo tests use the REST API fixtures (the real app on the test database)."""

from __future__ import annotations

from tests.api.conftest import api, api_db

__all__ = ["api", "api_db"]
