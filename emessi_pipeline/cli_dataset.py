"""CLI commands over the coded dataset: speakers, codebook, coding, exports."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the dataset commands to the top-level `emessi` app."""
