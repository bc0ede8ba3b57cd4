"""Running the chain over recordings: orchestration, caching, locks, interrupts, budgets.

``ingest`` holds the Ingestor (one batch) and ``chain`` one recording's way through the stages;
``results`` the run's result records and progress hooks; ``workspace`` the content-hashed
artifact cache; ``lock``, ``interrupts``, ``parallel``, ``shard``, ``clean``, ``runlog``,
``devices``, ``memory``, ``privacy``, ``manifest`` and ``model_status`` one concern each; ``demo``
builds and ingests the bundled demo meeting.

Layer: below the command line, beside ``evaluation``; it may import ``dataset``, ``stages`` and
``config``, never ``cli`` or ``evaluation``.
"""
