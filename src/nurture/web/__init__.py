"""HTTP interface: the FastAPI application (UI, REST API, public endpoints)."""
