"""The worker: the engine loop driven by a clock, with channel delivery after each batch.

:mod:`.loop` is the loop shared by every runner (``nurture tick`` once to exhaustion,
``nurture worker`` forever, the Celery tasks); :mod:`.runner` runs it in a thread of
``nurture serve`` (embedded mode). It sits above the engine and the channels and is where
they meet: the engine queues messages in its batch transactions, the worker delivers them
after commit.
"""
