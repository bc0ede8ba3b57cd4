"""What leaves the dataset: tables (Parquet/CSV), transcripts and subtitles, ELAN, REFI-QDA.

``lines`` reads a recording's transcript lines (who said what, when), which ``transcripts``,
``elan`` and ``qdpx`` write out; ``table`` copies any table or view to a file.

Part of the ``dataset`` layer: it may import the rest of ``dataset``, ``stages`` and ``config``.
"""
