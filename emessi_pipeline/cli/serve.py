"""`emessi serve`: start the browser workbench on this machine."""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated, Optional

import duckdb
import typer

from .common import DEFAULT_DB, DEFAULT_WORKSPACE, Db, Exit, ProfileOpt, Work, err, fail, out

LOCAL = "127.0.0.1"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    db: Db = DEFAULT_DB,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8765,
    coder: Annotated[Optional[str], typer.Option("--coder", help="Code as this coder (default: the page asks once).")] = None,
    new_coder: Annotated[bool, typer.Option("--new-coder", help="Let a coder the registry does not know code here (registered at their first write); without it, an unknown name is refused.")] = False,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on; anything but 127.0.0.1 lets other machines reach the workbench (they still need the token).")] = LOCAL,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the workbench in a browser, where there is one.")] = True,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
) -> None:
    """Open the workbench: the media beside the transcript, coding by keyboard, text corrections,
    speakers, the review list, plots and agreement, in a browser on this machine.

    It listens on 127.0.0.1 only and prints an address with a one-time token; every request
    needs that token (a cookie after the first visit). It works offline. The database stays free
    between requests, so `emessi ingest` and other commands can use it at the same time.
    Assigning a speaker teaches the participant's voiceprint from the recording's extracted
    audio in --workspace (with the profile's voiceprint settings).

    Example:

      emessi serve --db meetings.duckdb --coder anna
    """
    import uvicorn

    from ..serve import Settings, create_app

    if not db.exists():
        fail(f"{db}: no such database (run `emessi ingest` first, or pass --db)", Exit.USAGE)
    if coder is not None and not coder.strip():
        fail("--coder: give a name", Exit.USAGE)
    if coder is not None:
        coder = _registered(db, coder, new_coder)
    if host != LOCAL:
        err.print(f"[yellow]warning:[/] listening on {host}: other machines on that network can reach the workbench "
                  "(recordings of named people); anyone with the token can read and change the dataset", highlight=False)  # fmt: skip
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error} (another program uses the port? try --port)", Exit.USAGE)
    from ..config import load_profile
    from ..runs.workspace import voices

    try:
        prof = load_profile(profile)
    except (FileNotFoundError, ValueError) as error:
        fail(error, Exit.USAGE)
    settings = Settings(db=db.resolve(), coder=coder, new_coder=new_coder, host=host,
                        voices=voices(prof, workspace.resolve()))  # fmt: skip
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    address = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/?token={settings.token}"
    out.print(f"emessi workbench on {db}:\n\n    {address}\n\nopen that address (the token in it is needed); Ctrl-C stops",
              highlight=False, soft_wrap=True)  # fmt: skip
    if browser and _has_display():
        import threading
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(address)).start()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _registered(db, coder: str, new_coder: bool) -> str:
    """The registry's spelling of --coder; an unknown name is refused unless --new-coder (as
    `coding import` does), so a typo does not start a second coder."""
    from ..dataset.coders import require_coder
    from ..dataset.common import DatasetError
    from ..dataset.connection import DatabaseBusyError, open_reader, outdated

    try:
        con = open_reader(db)
    except DatabaseBusyError as error:
        fail(" ".join(str(error).split()), Exit.USAGE)
    try:
        return require_coder(con, coder, new_coder)[0]
    except DatasetError as error:
        fail(f"--coder: {' '.join(str(error).split())}".replace("give --new-coder", "start with --new-coder"), Exit.USAGE)
    except duckdb.CatalogException:
        fail(outdated(con, db) or f"{db}: no coders table", Exit.USAGE)
    finally:
        con.close()


def _has_display() -> bool:
    """A graphical browser can open: not over plain SSH or in a container without a display."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
