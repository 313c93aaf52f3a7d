"""Message channels (email, SMS, webhooks): each one an activity executor, an outbox on the
shared delivery core and an event source.

What the channels share is written once here; a channel supplies only what differs (compose,
transport, address rules):

* :mod:`.queue` — the delivery core (claim with a lease, send outside the transaction,
  record before the next claim, interrupted sends failed as unknown);
* :mod:`.messages` — recording a hand-over's outcome (sent / retry / failed, the bounce hook);
* :mod:`.context` — a channel's per-process context and transport;
* :mod:`.batch` — the executor of a message step (template, records, refusals, queued rows);
* :mod:`.activity_templates` — the template of an activity (CRUD, copy, compile cache);
* :mod:`.links` — tracked links; :mod:`.models` — template and outbox columns;
* :mod:`.delivery` — the delivery entry points workers call.
"""
