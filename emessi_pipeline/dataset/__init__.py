"""The coded dataset in DuckDB: schema, connections, loading, and the human work on top.

``schema`` (the DDL of every table and view), ``connection`` (migrations, ``connect``, a
read-only and a writing connection, transactions), ``load`` (one recording's load transaction,
runs and failures), ``common`` (recording look-up, ids, errors), ``speakers``, ``codebook``,
``coding``, ``coders`` (the coders registry), ``carry`` (codings across re-processing), ``review`` (what to check first),
``agreement``, ``batches`` and ``undo`` (imports as batches, history, revert), ``participant_changes``, ``withdrawal`` (a participant's withdrawal, a recording's removal), and ``exports`` (tables; transcript ``lines`` and the transcripts, ELAN and
REFI-QDA files made of them).

Layer: above ``stages``; it may import ``stages`` (records) and ``config``, never ``runs``,
``evaluation`` or ``cli``. The load transaction and the migrations know no coding module:
carry-over and review flags register themselves below, when the package is imported (which
any import of one of its modules does first).
"""

from . import batches, carry, coders, review, withdrawal
from .connection import register_migration
from .load import register_load_hook

# Carry-over first, then the flags: the order the load transaction has always run them in.
register_load_hook(carry.on_load)
register_load_hook(review.on_load)
# Last: withdrawn speech is blanked after the flags (whose details quote text) are written.
register_load_hook(withdrawal.on_load)
# A database made before the review flags existed gets them for its current sets now.
register_migration(review.fill_stale)
# Codings made before the coders registry register their coders.
register_migration(coders.register_existing)
# Codings imported before batches existed become batches, so they can be listed and reverted.
register_migration(batches.batch_legacy_work)
