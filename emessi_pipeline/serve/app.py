"""The workbench's web app (Starlette): pages rendered on the server with Jinja2, a little plain
JavaScript (static/app.js) for playback, keys and saving, and JSON endpoints for the writes.

Every read opens the locked-down reader (`open_reader`, as `emessi query` does) and closes it at
once. A write opens a writer and keeps it for a short idle window (WRITER_IDLE_S) so a burst of
keypresses does not pay for opening the file each time (most of a round trip); after the window
the writer is closed, so the database is free for a nightly `emessi ingest` and the CLI between
bursts. DuckDB lets one process hold one kind of connection to a file at a time, so the app uses
one connection at a time (a lock), and a read during the window reads through the held writer.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import duckdb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..dataset import workbench
from ..dataset.coders import add_coder, find_coder, require_coder
from ..dataset.common import DatasetError, clock
from ..dataset.connection import WAIT_ENV, DatabaseBusyError, connect, default_wait, open_reader
from ..dataset.schema import ROLES
from ..dataset.speakers import Assignment, assign, list_participants, move_observation, unassign
from . import plots

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "emessi_token"
CODER_COOKIE = "emessi_coder"
# A write waits this long for a database another program holds before the page is told it is
# busy; the page then keeps the change and sends it again until it lands.
WRITE_WAIT_S = 3.0
READ_WAIT_S = 3.0
# How long a writer stays open after a write: long enough for the next keypress of a coder at
# work, short enough that another program waiting for the file (its wait is seconds) gets it.
WRITER_IDLE_S = 1.0


def _wait(default: float) -> float:
    """--db-wait / EMESSI_DB_WAIT when given, else *default* (a page should not hang for long)."""
    return default_wait() if os.environ.get(WAIT_ENV, "").strip() else default


@dataclass
class Settings:
    db: Path
    coder: str | None = None
    # Coders not in the registry are refused unless the workbench was started with --new-coder.
    new_coder: bool = False
    # The address the server listens on: requests naming another host are refused (DNS rebinding).
    host: str = "127.0.0.1"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    write_wait: float = field(default_factory=lambda: _wait(WRITE_WAIT_S))
    read_wait: float = field(default_factory=lambda: _wait(READ_WAIT_S))
    # What voiceprints need (dataset/voiceprints.Voices): an assignment teaches the participant's
    # voice; None: assignments teach nothing (the workbench started from the API without it).
    voices: object | None = None


class Store:
    """One connection at a time: a reader opened for one request and closed after it, or the
    writer, kept open for WRITER_IDLE_S after its last write and then closed."""

    def __init__(self, settings: Settings, idle: float = WRITER_IDLE_S):
        self.settings = settings
        self.idle = idle
        self.lock = threading.Lock()
        self.writer: duckdb.DuckDBPyConnection | None = None
        self.last_write = 0.0
        self.timer: threading.Timer | None = None
        # What `u` takes back, per coder: the inverse of each write, latest last. Kept in this
        # process only: every write itself is in the database's history.
        self.undo: dict[str, list[tuple]] = defaultdict(list)

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.lock:
            if self.writer is not None:  # a reader cannot open beside it in this process
                yield self.writer
                return
            con = open_reader(self.settings.db, wait=self.settings.read_wait)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.lock:
            if self.writer is None:
                self.writer = open_writer_connection(self.settings.db, self.settings.write_wait)
            try:
                yield self.writer
            except duckdb.Error:
                self._close()  # a connection DuckDB failed on is not kept for the next write
                raise
            finally:
                # Refused writes too: the window starts again, and the writer always expires.
                self.last_write = time.monotonic()
                if self.idle <= 0:
                    self._close()
                elif self.writer is not None and self.timer is None:
                    self._arm(self.idle)

    def _arm(self, delay: float) -> None:
        self.timer = threading.Timer(delay, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        with self.lock:
            self.timer = None
            if self.writer is None:
                return
            left = self.last_write + self.idle - time.monotonic()
            if left > 0:  # written again meanwhile: wait out the rest of its window
                self._arm(left)
            else:
                self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self._close()


def open_writer_connection(path: Path, wait: float) -> duckdb.DuckDBPyConnection:
    """A writing connection the caller closes (``open_writer`` closes at the end of a block)."""
    return connect(path, wait=wait)


class HostGate:
    """Refuse a request whose Host header names another host than the one the workbench listens
    on: a web page from elsewhere could point its own name at 127.0.0.1 (DNS rebinding) and so
    reach the workbench as a same-origin page. The token would stop it too; this refuses it
    before anything else is read."""

    LOCAL = {"127.0.0.1", "localhost", "::1"}

    def __init__(self, app, host: str):
        self.app = app
        self.any_address = host in ("0.0.0.0", "::")
        self.allowed = self.LOCAL | {host.strip("[]").lower()}

    def accepts(self, header: str) -> bool:
        name = header.strip().lower()
        if name.startswith("["):
            name = name[1:].split("]", 1)[0]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        if name in self.allowed:
            return True
        # Listening on every interface: the machine's own addresses, by number (rebinding needs a name).
        if self.any_address:
            import ipaddress

            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if self.accepts(host):
            return await self.app(scope, receive, send)
        refused = PlainTextResponse(f"refused: the address names host {host!r}; open the workbench at the "
                                    "address `emessi serve` printed\n", status_code=403)  # fmt: skip
        return await refused(scope, receive, send)


class TokenGate:
    """Every request carries the token: in the address once (it becomes a cookie and the address
    is cleaned), then in the cookie. Anything else is refused before any route runs."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and secrets.compare_digest(given, self.token):
            rest = "&".join(f"{quote(k)}={quote(v)}" for k, v in request.query_params.multi_items() if k != "token")
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return await response(scope, receive, send)
        if secrets.compare_digest(request.cookies.get(TOKEN_COOKIE, ""), self.token):
            return await self.app(scope, receive, send)
        refused = PlainTextResponse("refused: no or wrong token; open the address `emessi serve` printed "
                                    "(it ends in ?token=…)\n", status_code=403)  # fmt: skip
        return await refused(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    store = Store(settings)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["clock"] = lambda s: clock(s or 0.0, hours=(s or 0) >= 3600)[:-2] if s is not None else ""
    templates.env.filters["minutes"] = lambda s: f"{int(s // 60)} min {int(s % 60)} s" if s else ""

    def coder_of(request: Request) -> str | None:
        return settings.coder or (request.cookies.get(CODER_COOKIE) or "").strip() or None

    def page(request: Request, name: str, **context) -> Response:
        context |= {"coder": coder_of(request), "fixed_coder": settings.coder is not None}
        return templates.TemplateResponse(request, name, context)

    def busy_page(request: Request, error: Exception) -> Response:
        response = page(request, "message.html", title="The database is busy", message=str(error), retry=True)
        response.status_code = 503
        return response

    def reading(render):
        """A page from a read: a held database gives a page that tries again by itself; a bad
        name gives a 404 with the reason."""

        def endpoint(request: Request) -> Response:
            try:
                with store.read() as con:
                    return render(request, con)
            except DatabaseBusyError as error:
                return busy_page(request, error)
            except DatasetError as error:
                response = page(request, "message.html", title="Not found", message=str(error))
                response.status_code = 404
                return response

        return endpoint

    def recordings(request: Request, con) -> Response:
        group = request.query_params.get("group") or None
        rows = workbench.recordings_overview(con, group)
        groups = sorted({r["group_id"] for r in workbench.recordings_overview(con)} - {None})
        return page(request, "recordings.html", rows=rows, groups=groups, group=group)

    def registered(con, name: str | None) -> str | None:
        """The registry's spelling of *name* (a coder typed `Anna` sees anna's codings)."""
        if not name:
            return None
        try:
            return find_coder(con, name) or name
        except (DatasetError, duckdb.CatalogException):  # ambiguous, or a database without a registry
            return name

    def recording(request: Request, con) -> Response:
        view = workbench.recording_view(con, request.path_params["rid"], registered(con, coder_of(request)))
        media_ok = Path(view.path).is_file()
        return page(request, "recording.html", view=view, media_ok=media_ok, missing_path=view.path)

    def speakers(request: Request, con) -> Response:
        view = workbench.recording_view(con, request.path_params["rid"], labels=True)
        participants = [p for p in list_participants(con, view.group_id)]
        return page(request, "speakers.html", view=view, participants=participants, roles=ROLES,
                    media_ok=Path(view.path).is_file())  # fmt: skip

    def review(request: Request, con) -> Response:
        from ..dataset.review import OUTCOMES, review_list

        rid = request.query_params.get("recording") or None
        everything = request.query_params.get("all") == "1"
        from ..dataset.carry import CARRY_OUTCOMES, carried_for_review

        items = review_list(con, rid, resolved=everything)
        names = dict(con.execute("SELECT recording_id, name FROM recordings").fetchall())
        carried = [c | {"recording": names.get(c["recording_id"], c["recording_id"])}
                   for c in carried_for_review(con, rid, resolved=everything)]  # fmt: skip
        return page(request, "review.html", items=items, carried=carried, recording=rid, everything=everything,
                    outcomes=OUTCOMES, carry_outcomes=CARRY_OUTCOMES)  # fmt: skip

    def recording_plots(request: Request, con) -> Response:
        view = workbench.recording_view(con, request.path_params["rid"])
        rid = view.recording_id
        talk = con.execute("SELECT speaker, role, talk_s FROM talk_per_participant WHERE recording_id = ? "
                           "ORDER BY talk_s DESC", [rid]).fetchall()  # fmt: skip
        roles = con.execute("SELECT role, talk_s FROM talk_per_role WHERE recording_id = ? ORDER BY talk_s DESC",
                            [rid]).fetchall()  # fmt: skip
        turns = con.execute("SELECT speaker, start_s, end_s FROM current_regular_turns WHERE recording_id = ?",
                            [rid]).fetchall()  # fmt: skip
        overlaps = con.execute("SELECT at_s, at_s + overlap_s FROM overlap_events WHERE recording_id = ?", [rid]).fetchall()
        matrix = {(a, b): n for a, b, n in con.execute(
            "SELECT from_speaker, to_speaker, transitions FROM turn_transitions WHERE recording_id = ?", [rid]).fetchall()}  # fmt: skip
        codes = con.execute(
            "SELECT dimension || ': ' || code, role, count(*) FROM current_codings WHERE recording_id = ? "
            "GROUP BY ALL ORDER BY 1", [rid]).fetchall()  # fmt: skip
        charts = [
            plots.bars([(f"{s} ({r})", t) for s, r, t in talk], "Talk time by participant"),
            plots.bars([(r, t) for r, t in roles], "Talk time by role", colours=plots.ROLE_COLOURS),
            plots.timeline(turns, overlaps, view.duration_s or 0.0, "Who speaks when (overlaps in red)"),
            plots.heatmap(matrix, "Turn-taking: who speaks after whom"),
            plots.stacked(codes, "Codes by role (codings of every coder)", plots.ROLE_COLOURS),
        ]
        return page(request, "plots.html", title=view.name, view=view, charts=charts, group=view.group_id)

    def group_plots(request: Request, con) -> Response:
        group = request.path_params["group"]
        if not con.execute("SELECT 1 FROM recordings WHERE group_id = ?", [group]).fetchone():
            raise DatasetError(f"no group {group!r}")
        talk = con.execute("SELECT speaker, roles, talk_s FROM group_talk_per_participant WHERE group_id = ? "
                           "ORDER BY talk_s DESC", [group]).fetchall()  # fmt: skip
        roles = con.execute("SELECT role, talk_s FROM group_talk_per_role WHERE group_id = ? ORDER BY talk_s DESC",
                            [group]).fetchall()  # fmt: skip
        matrix = {(a, b): int(n) for a, b, n in con.execute(
            "SELECT from_speaker, to_speaker, sum(transitions) FROM turn_transitions WHERE group_id = ? GROUP BY 1, 2",
            [group]).fetchall()}  # fmt: skip
        sessions = con.execute(
            "SELECT coalesce('session ' || session_no, recording_name), speaker, talk_s FROM talk_per_participant "
            "WHERE group_id = ? ORDER BY session_no, recording_name", [group]).fetchall()  # fmt: skip
        codes = con.execute("SELECT dimension || ': ' || code, role, count(*) FROM current_codings WHERE group_id = ? "
                            "GROUP BY ALL ORDER BY 1", [group]).fetchall()  # fmt: skip
        charts = [
            plots.bars([(f"{s} ({r})", t) for s, r, t in talk], "Talk time by participant, all sessions"),
            plots.bars([(r, t) for r, t in roles], "Talk time by role, all sessions", colours=plots.ROLE_COLOURS),
            plots.stacked(sessions, "Talk time per session and participant (s)"),
            plots.heatmap(matrix, "Turn-taking across sessions: who speaks after whom"),
            plots.stacked(codes, "Codes by role (codings of every coder)", plots.ROLE_COLOURS),
        ]
        return page(request, "plots.html", title=f"group {group}", view=None, charts=charts, group=group)

    def agreement(request: Request, con) -> Response:
        from ..dataset.agreement import agreement as kappa

        known = workbench.coders(con)
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not (a and b) and len(known) >= 2:
            a, b = known[0], known[1]
        rows = kappa(con, a, b) if a and b else []
        diffs = workbench.disagreements(con, a, b) if a and b else []
        return page(request, "agreement.html", coders=known, a=a, b=b, rows=rows, diffs=diffs)

    def media(request: Request) -> Response:
        rid = request.path_params["rid"]
        try:
            with store.read() as con:
                path = workbench.media_path(con, rid)
        except DatabaseBusyError as error:
            return PlainTextResponse(str(error), status_code=503)
        # Only a file the database names for this recording, by its id: the address carries no path.
        if path is None:
            return PlainTextResponse("no such recording", status_code=404)
        if not Path(path).is_file():
            return PlainTextResponse(f"the media file is not where the database expects it: {path}", status_code=404)
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind)

    # ---------------------------------------------------------------- writes (JSON)

    async def writing(request: Request, work) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the request body is not a JSON object"}, status_code=400)
        coder = coder_of(request)
        if not coder:
            return JSONResponse({"error": "choose a coder first"}, status_code=400)

        def run():
            with store.write() as con:
                # The registry decides who this is: `Anna` is anna, a typo is refused (unless
                # the workbench was started with --new-coder, which registers the new name).
                name, new = require_coder(con, coder, settings.new_coder)
                if new:
                    add_coder(con, name, workbench.SOURCE)
                return work(con, name, body)

        try:
            return JSONResponse(await run_in_threadpool(run))
        except DatabaseBusyError as error:
            return JSONResponse({"busy": " ".join(str(error).split())}, status_code=503)
        except DatasetError as error:
            return JSONResponse({"error": " ".join(str(error).split())}, status_code=400)
        except (KeyError, TypeError, ValueError) as error:
            return JSONResponse({"error": f"bad request: {error}"}, status_code=400)

    def do_code(con, coder, body):
        codes = body.get("codes") or []
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise DatasetError("codes: a list of code ids")
        result = workbench.code_observation(con, coder, str(body["observation_id"]), str(body["dimension"]),
                                            codes, body.get("expected"))  # fmt: skip
        if result.changed:
            store.undo[coder].append(("code", result.observation_id, result.dimension, result.previous))
        return asdict(result)

    def do_text(con, coder, body):
        result = workbench.correct_text(con, coder, str(body["observation_id"]), str(body["text"]))
        if result.changed:
            store.undo[coder].append(("text", result.observation_id, result.previous))
        return asdict(result)

    def do_undo(con, coder, body):
        stack = store.undo[coder]
        if not stack:
            raise DatasetError(f"nothing to undo for {coder} (since the workbench started)")
        action = stack[-1]
        if action[0] == "code":
            _, obs, dim, previous = action
            result = workbench.code_observation(con, coder, obs, dim, previous)
            stack.pop()
            return {"undone": "code"} | asdict(result)
        if action[0] == "label":
            # An assignment or merge: the label gets back what it had, as a new row (the
            # assignment being undone stays in history); nothing before means unassigned.
            _, kind, rid, label, participant, role = action
            if participant is None and role == "unknown":
                unassign(con, rid, label, coder)
            else:
                assign(con, [Assignment(rid, label, participant, role)], coder)
            learn(con, rid)
            stack.pop()
            return {"undone": kind, "recording_id": rid, "label": label, "participant": participant, "role": role}
        if action[0] == "move":
            _, obs, previous = action
            moved = move_observation(con, obs, previous, coder, "undone in the workbench")
            stack.pop()
            return {"undone": "move"} | asdict(moved)
        _, obs, previous = action
        result = workbench.correct_text(con, coder, obs, previous)
        stack.pop()
        return {"undone": "text"} | asdict(result)

    def label_before(con, rid: str, label: str) -> tuple:
        row = con.execute("SELECT participant_id, role FROM current_speaker_assignments WHERE recording_id = ? "
                          "AND speaker_label = ?", [rid, label]).fetchone()  # fmt: skip
        return tuple(row) if row else (None, "unknown")

    def learn(con, rid: str) -> list[str]:
        """Teach the voiceprints what the recording's assignments say now; what could not be
        learnt (no audio in the workspace, no model) is said, and the assignment stands."""
        from ..dataset.voiceprints import refresh
        from ..stages.models import MissingModelError

        if settings.voices is None:
            return []
        try:
            learnt = refresh(con, rid, settings.voices)
        except (MissingModelError, DatasetError) as error:
            return [f"voiceprints not updated: {' '.join(str(error).split())}"]
        return [f"voiceprint of {item.participant_id}: {item.note or item.status}" for item in learnt
                if item.status not in ("built", "unchanged", "removed")]  # fmt: skip

    def do_assign(con, coder, body):
        rid, label = str(body["recording_id"]), str(body["label"])
        participant = (body.get("participant") or "").strip() or None
        before = label_before(con, rid, label)
        changed = assign(con, [Assignment(rid, label, participant, str(body.get("role") or "unknown"))], coder)
        if changed:
            store.undo[coder].append(("label", "assign", rid, label, *before))
        return {"changed": changed, "voiceprints": learn(con, rid) if changed else []}

    def do_merge(con, coder, body):
        rid, label = str(body["recording_id"]), str(body["label"])
        before = label_before(con, rid, label)
        changed = workbench.merge_labels(con, rid, label, str(body["into"]), coder)
        if changed:
            store.undo[coder].append(("label", "merge", rid, label, *before))
        return {"changed": changed, "voiceprints": learn(con, rid) if changed else []}

    def do_move(con, coder, body):
        moved = move_observation(con, str(body["observation_id"]), str(body["label"]), coder, body.get("note"))
        if moved.changed:
            store.undo[coder].append(("move", moved.observation_id, moved.previous))
        return asdict(moved)

    def do_resolve(con, coder, body):
        from ..dataset.review import resolve

        obs, name, seq, _ = resolve(con, str(body["observation_id"]), str(body["outcome"]), body.get("note"), coder)
        return {"observation_id": obs, "recording": name, "seq": seq, "outcome": body["outcome"]}

    def do_resolve_carried(con, coder, body):
        from ..dataset.carry import resolve_carried

        _, kind, item = resolve_carried(con, str(body["item_id"]), str(body["outcome"]), body.get("note"), coder)
        return {"item_id": item, "kind": kind, "outcome": body["outcome"]}

    def api(work):
        async def endpoint(request: Request) -> Response:
            return await writing(request, work)

        return endpoint

    routes = [
        Route("/", reading(recordings)),
        Route("/r/{rid}", reading(recording)),
        Route("/r/{rid}/speakers", reading(speakers)),
        Route("/r/{rid}/plots", reading(recording_plots)),
        Route("/g/{group}/plots", reading(group_plots)),
        Route("/review", reading(review)),
        Route("/agreement", reading(agreement)),
        Route("/media/{rid}", media),
        Route("/api/code", api(do_code), methods=["POST"]),
        Route("/api/text", api(do_text), methods=["POST"]),
        Route("/api/undo", api(do_undo), methods=["POST"]),
        Route("/api/assign", api(do_assign), methods=["POST"]),
        Route("/api/merge", api(do_merge), methods=["POST"]),
        Route("/api/move", api(do_move), methods=["POST"]),
        Route("/api/resolve", api(do_resolve), methods=["POST"]),
        Route("/api/resolve-carried", api(do_resolve_carried), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @asynccontextmanager
    async def lifespan(app):
        yield
        store.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.add_middleware(TokenGate, token=settings.token)
    app.add_middleware(HostGate, host=settings.host)  # added last: runs first
    return app
