"""Tracking: signed tokens (:mod:`.tokens`), the tracking URLs (:mod:`.urls`) and the
classification of open and click hits (:mod:`.hits`)."""
