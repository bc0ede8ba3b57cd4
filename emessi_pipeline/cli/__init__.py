"""The `emessi` command line: a thin view of the library.

Layer: the top. It may import every other layer (runs, evaluation, dataset, stages, config);
nothing in the package imports it. Modules:

- ``common``: the consoles, the exit codes (:class:`~.common.Exit`), the shared options and the
  dataset connection wrapper; every group imports it.
- one module per command group, each with ``register(app)``: ``ingest`` (ingest, the per-stage
  commands, status, clean), ``models``, ``query``, ``demo``, ``recordings``, ``report``, ``dataset`` (speakers,
  participants, codebook, coding, export), ``review`` and ``evaluate`` (eval).
- ``app``: the root app (``--version``) registering every group, and ``main``. No group imports
  it, so there is no import circle.
"""

from .app import app, main
from .common import Exit

__all__ = ["Exit", "app", "main"]
