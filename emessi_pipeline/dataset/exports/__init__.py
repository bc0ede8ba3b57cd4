"""What leaves the dataset: tables (Parquet/CSV), transcripts and subtitles, ELAN, REFI-QDA.

Part of the ``dataset`` layer: it may import the rest of ``dataset``, ``stages`` and ``config``.
"""
