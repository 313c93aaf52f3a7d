"""Tracking: signed URL and mail tokens (opens, clicks, unsubscribes, VERP, Message-ID)."""
