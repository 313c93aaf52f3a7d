"""End-to-end fixtures of the campaign template tests: the email integration ones, reused.

``env`` (a real SMTP server on loopback, the web app for tracking hits, a settable clock)
comes from :mod:`tests.channels.email.integration.conftest`.
"""

from __future__ import annotations

from tests.channels.email.integration.conftest import env

__all__ = ["env"]
