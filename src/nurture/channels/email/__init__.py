"""The email channel: link tracking, MIME building, transports, inbound mail.

Templates (sandboxed Jinja2 checked against the model registry at save time, rendered to
subject, preview, HTML with CSS inlined and a preheader, and text) live in
:mod:`nurture.templating`, shared with SMS and transactional actions.

Modules:

* :mod:`.links` — tracked-link rewriting, UTM parameters and the open pixel;
* :mod:`.mime` — the outgoing message (multipart/alternative, Message-ID and VERP tokens,
  RFC 8058 List-Unsubscribe, bulk headers) as wire bytes;
* :mod:`.compose` — one trace's message: template + record + signed tracking URLs → MIME;
* :mod:`.transports` — ``smtp`` (pooled, STARTTLS/implicit TLS, 4xx/5xx classification) and
  in-memory ``outbox`` transports behind one interface, and the retry backoff;
* :mod:`.inbound` — bounce / reply / auto-reply classification of inbound mail;
* :mod:`.inbound_smtp` — the aiosmtpd handler of the inbound SMTP listener;
* :mod:`.imap` — IMAP polling (``NURTURE_IMAP_URL``);
* :mod:`.bounces` — the auto-blacklist rule;
* :mod:`.context` — the channel's per-process context (signer, sender identity);
* :mod:`.service` — template rules, the ``email`` executor (checks, compose), unsubscribes;
* :mod:`.delivery` — the :class:`~.delivery.EmailChannel` of the delivery core and the
  process transport;
* :mod:`.tracking` — open and click hits written with group commit (the routes are
  :mod:`nurture.web.tracking`);
* :mod:`.receive` — inbound bounces and replies applied to traces.

Tokens and tracking URLs live in :mod:`nurture.tracking`.
"""
