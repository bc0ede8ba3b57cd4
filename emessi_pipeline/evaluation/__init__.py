"""Scoring the dataset against references: reference readers, text normalisation, metrics.

Layer: beside ``runs``, below the command line; it may import ``dataset``, ``stages`` and
``config``, never ``runs`` or ``cli``.
"""
