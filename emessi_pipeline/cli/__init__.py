"""The `emessi` command line: a thin view of the library.

Layer: the top. It may import every other layer (runs, evaluation, dataset, stages, config);
nothing in the package imports it. One module per command group, and ``common`` for what they
share (consoles, options, exit codes, the dataset connection wrapper).
"""

from .app import app, main

__all__ = ["app", "main"]
