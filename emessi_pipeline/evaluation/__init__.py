"""Scoring the dataset against references (`emessi eval`; definitions in docs/eval.md).

- ``references``: reference readers (RTTM, STM, SRT/WebVTT, CSV/TSV, JSON; UEM scoring regions)
  and matching reference files to recordings by name;
- ``normalize``: text normalisation before word metrics (Finnish numbers as words);
- ``metrics``: WER/CER, DER and its parts, JER, cpWER, turn-boundary precision/recall, and the
  score records that pool over recordings; no database here;
- ``evaluate``: a recording's hypothesis read from the database, the per-recording score, and
  :func:`~.evaluate.evaluate_recording` / :func:`~.evaluate.evaluate_database`.

Within it, ``evaluate`` uses the other three and ``metrics`` uses ``normalize`` and
``references`` (for Span); no module here imports ``evaluate``. Layer: beside ``runs``, below the
command line; it may import ``dataset``, ``stages`` and ``config``, never ``runs`` or ``cli``.
"""
