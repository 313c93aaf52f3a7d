"""The campaign engine: enrolment, execution of due traces, events, test mode, runners.

Importing the package subscribes continuous enrolment to the record services' change
notifications (:mod:`nurture.engine.enrol`).
"""

from nurture.engine import enrol as _enrol  # noqa: F401  (registers the record listeners)
