"""The coded dataset in DuckDB: schema, connections, loading, and the human work on top.

``connection`` (schema, migrations, a read-only and a writing connection, transactions),
``load`` (one recording's load transaction, runs and failures), ``common`` (recording look-up,
ids, errors), ``speakers``, ``codebook``, ``coding``, ``carry`` (codings across re-processing),
``review`` (what to check first), ``agreement``, and ``exports`` (tables, transcripts, ELAN,
REFI-QDA).

Layer: above ``stages``; it may import ``stages`` (records) and ``config``, never ``runs``,
``evaluation`` or ``cli``. The load transaction knows no coding module: carry-over and review
flags register themselves as load hooks here, when the package is imported.
"""
