"""The SMS channel (SPEC §7): building blocks the engine wires in as the ``sms`` executor.

Modules:

* :mod:`.segments` — GSM-7 / UCS-2 detection and the segment count shown while editing;
* :mod:`.render` — templates (the :mod:`nurture.templating` sandbox), tracked short links, opt-out
  text, recipients normalised to E.164;
* :mod:`.providers` — the ``outbox`` and ``http`` (Twilio-compatible) providers behind one
  interface, and verification of delivery-status callbacks;
* :mod:`.context` — the channel's per-process context (signer, short-link base, opt-out text);
* :mod:`.service` — template rules, the ``sms`` executor (checks, render);
* :mod:`.delivery` — the :class:`~.delivery.SmsChannel` of the delivery core and the process
  provider;
* :mod:`.tracking` — short-link clicks and delivery-status callbacks written (the routes are
  :mod:`nurture.web.tracking`).
"""
