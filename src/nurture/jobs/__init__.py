"""Scale-out engine on Celery (``nurture worker --engine celery``, ``nurture scheduler``).

The embedded runner (:mod:`nurture.worker.runner`) stays the default; this package runs the
same service functions as Celery tasks over a broker (``NURTURE_BROKER_URL``). See
:mod:`nurture.jobs.app` (the Celery app), :mod:`nurture.jobs.tasks`,
:mod:`nurture.jobs.scheduler` and :mod:`nurture.jobs.hooks`.
"""

from __future__ import annotations

from nurture.runtime import Runtime


def attach(rt: Runtime) -> None:
    """Make this process send follow-up tasks (record changes, events) over the broker."""
    from nurture.jobs import hooks
    from nurture.jobs.app import configure

    configure(rt=rt)
    hooks.install()


def attach_if_configured(rt: Runtime) -> Runtime:
    """:func:`attach` when a broker is configured (``NURTURE_BROKER_URL``): every process
    opened by the CLI (server, worker, inbound mail) then sends follow-ups over the broker."""
    if rt.settings.extra.get("NURTURE_BROKER_URL"):
        attach(rt)
    return rt
