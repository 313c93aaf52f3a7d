"""The email channel: templates, link tracking, MIME building, transports, inbound mail.

Modules:

* :mod:`.templates` — sandboxed Jinja2 templates checked against the model registry;
* :mod:`.links` — tracked-link rewriting, UTM parameters and the open pixel;
* :mod:`.mime` — the outgoing :class:`email.message.EmailMessage` with its headers;
* :mod:`.transports` — ``smtp`` and in-memory ``outbox`` transports behind one interface;
* :mod:`.inbound` — bounce / reply / auto-reply classification of inbound mail.
"""
