"""The shared outbox for channels without a table of their own (plugins).

:mod:`.models` is the ``channel_message`` table; :mod:`.channel` is what a plugin channel
uses: :func:`~.channel.queue_messages` in its executor (the engine's batch transaction) and
an :class:`~.channel.OutboxChannel` wrapping its ``send(message) -> SendResult``, declared
in the entry-point group ``nurture.channels``, delivered after commit by the shared core.
"""
