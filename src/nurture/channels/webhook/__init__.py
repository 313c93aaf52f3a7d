"""Outgoing webhooks: the outbox of the ``webhook`` server action (:mod:`.models`) and its
delivery through the shared delivery core (:mod:`.delivery`)."""
