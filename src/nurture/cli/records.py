"""Record commands: demo data, CSV import/export, filter counts."""

from __future__ import annotations
