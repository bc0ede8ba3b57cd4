"""`emessi serve` in a real browser (the system's Chromium, driven by Playwright) and over plain
HTTP: one server process and one browser page for the whole module, on a private copy of the
demo dataset. What the browser did is checked in the database through `emessi query`."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from .dataset_fixtures import CODEBOOK, DEMO, dataset_base, emessi  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parent.parent


def query(db: Path, sql: str) -> list[dict]:
    return json.loads(emessi("query", sql, "--db", db, "--format", "json").stdout)


@pytest.fixture(scope="module")
def served(dataset_base, tmp_path_factory):  # noqa: F811
    """The workbench on a copy of the dataset (with the example codebook), in its own process
    as a user starts it; yields (db, base address, token, recording id of the demo meeting)."""
    root = tmp_path_factory.mktemp("serve")
    db = root / "dataset.duckdb"
    shutil.copy(dataset_base.db, db)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1", EMESSI_DB_WAIT="0.5", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "emessi_pipeline", "serve", "--db", str(db), "--port", str(port), "--no-browser",
         "--coder", "anna", "--new-coder"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        printed = ""
        for line in proc.stdout:
            printed += line
            if "token=" in line:
                break
        address = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", printed)
        assert address, printed
        base, token = address.groups()
        for _ in range(100):  # the address is printed just before uvicorn listens
            try:
                urllib.request.urlopen(base + "/static/style.css", timeout=2)
            except urllib.error.HTTPError:
                break  # answered (403 without the token): listening
            except OSError:
                time.sleep(0.1)
        (rid,) = duckdb.connect(str(db), read_only=True).execute(
            "SELECT recording_id FROM recordings WHERE name = ?", [DEMO]).fetchone()  # fmt: skip
        yield db, base, token, rid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(served):
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, base, token, _ = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"])
        tab = browser.new_page()
        tab.set_default_timeout(20_000)
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{base}/?token={token}")
        tab.errors = errors
        yield tab
        browser.close()


def _request(base: str, path: str, token: str | None = None, headers: dict | None = None):
    """A raw GET: the path goes out exactly as written (no client-side normalising of '..')."""
    host, port = base.removeprefix("http://").split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=10)
    con.request("GET", path, headers=(headers or {}) | ({"Cookie": f"emessi_token={token}"} if token else {}))
    response = con.getresponse()
    body = response.read()
    con.close()
    return response.status, response.headers, body


def test_every_request_needs_the_token(served):
    _, base, token, rid = served
    for path in ("/", f"/r/{rid}", f"/media/{rid}", "/static/app.js", "/review"):
        status, _, body = _request(base, path)
        assert status == 403 and b"token" in body, path
    assert _request(base, "/?token=wrong")[0] == 403
    assert _request(base, "/", token="wrong")[0] == 403
    status, headers, _ = _request(base, f"/?token={token}")
    assert status == 303 and "token=" not in headers["location"]
    assert f"emessi_token={token}" in headers["set-cookie"] and "samesite=strict" in headers["set-cookie"].lower()
    assert _request(base, "/", token=token)[0] == 200


def test_no_address_reads_a_file_outside_static_files_and_recordings(served):
    _, base, token, rid = served
    for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/static/..%2f..%2f..%2fetc%2fpasswd", "/media/..%2f..%2fetc%2fpasswd", "/media/%2fetc%2fpasswd",
                 "/static//etc/passwd", f"/media/{rid}/../../etc/passwd", "/r/..%2f..%2fetc%2fpasswd"):  # fmt: skip
        status, _, body = _request(base, path, token)
        assert status in (400, 404), path
        assert b"root:" not in body, path
    # The media of a recording the database names, with ranges (seeking).
    status, headers, body = _request(base, f"/media/{rid}", token, {"Range": "bytes=100-199"})
    assert status == 206 and len(body) == 100 and headers["content-range"].startswith("bytes 100-199/")


def test_bad_input_is_refused_with_a_message_and_changes_nothing(served):
    db, base, token, rid = served
    (obs,) = query(db, f"SELECT observation_id FROM utterances WHERE recording_id = '{rid}' AND seq = 1")
    before = query(db, "SELECT count(*) AS n FROM codings")

    def post(path, body):
        request = urllib.request.Request(base + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json", "Cookie": f"emessi_token={token}"})  # fmt: skip
        try:
            return urllib.request.urlopen(request).status, {}
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    oid = obs["observation_id"]
    assert post("/api/code", {"observation_id": oid, "dimension": "function", "codes": ["nope"]}) == \
        (400, {"error": "function: unknown code 'nope' (codes: question, answer_advice, experience, support, steering, technical)"})  # fmt: skip
    status, body = post("/api/code", {"observation_id": oid, "dimension": "function", "codes": ["question", "support"]})
    assert status == 400 and "allows one" in body["error"]
    status, body = post("/api/code", {"observation_id": "no-such", "dimension": "function", "codes": ["question"]})
    assert status == 400 and "no observation" in body["error"]
    status, body = post("/api/merge", {"recording_id": rid, "label": "SPEAKER_02", "into": "SPEAKER_03"})
    assert status == 400 and "assign SPEAKER_03 to a participant first" in body["error"]
    assert query(db, "SELECT count(*) AS n FROM codings") == before


def test_the_recording_page_plays_codes_corrects_and_keeps_it(served, page):
    db, base, token, rid = served
    page.goto(f"{base}/")
    page.click(f"a[href='/r/{rid}']")
    page.wait_for_selector(".row")
    rows = page.locator(".row")
    assert rows.count() == query(db, f"SELECT count(*) AS n FROM utterances WHERE recording_id = '{rid}'")[0]["n"]

    # Click a row: the media plays from its start and the row is highlighted.
    start = float(rows.nth(2).get_attribute("data-start"))
    rows.nth(2).click()
    page.wait_for_function(f"document.getElementById('media').currentTime > {start} + 0.3")
    assert "current" in rows.nth(2).get_attribute("class")
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('media').paused")

    # Three rows coded by keyboard: k k to the first row, topic keys 1 and 2, then d for function.
    page.keyboard.press("k")
    page.keyboard.press("k")
    assert "current" in rows.nth(0).get_attribute("class")
    page.keyboard.press("1")  # topic: working_time
    page.keyboard.press("j")
    page.keyboard.press("2")  # topic: managing_work
    page.keyboard.press("j")
    page.keyboard.press("d")
    page.keyboard.press("1")  # function: question
    # u takes back the last action: code row 4, then undo it.
    page.keyboard.press("j")
    page.keyboard.press("3")
    page.wait_for_function("document.querySelectorAll('.row.saving').length === 0")
    page.keyboard.press("u")
    page.wait_for_function("document.getElementById('status').textContent === 'undone'")
    # e edits the text of the current row (row 4): a text correction.
    page.keyboard.press("e")
    page.fill("textarea.editor", "Korjattu lause työpäivistä.")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('status').textContent === 'text saved'")

    page.reload()
    page.wait_for_selector(".row")
    cell = lambda i, dim: rows.nth(i).locator(f".cell[data-dim='{dim}']").text_content()  # noqa: E731
    assert (cell(0, "topic"), cell(1, "topic"), cell(2, "function"), cell(3, "function")) == \
        ("working_time", "managing_work", "question", "")  # fmt: skip
    assert rows.nth(3).locator(".text").text_content() == "Korjattu lause työpäivistä."
    assert page.errors == []

    coded = query(db, "SELECT seq, dimension, code, source FROM current_codings WHERE coder = 'anna' ORDER BY seq")
    assert [(c["seq"], c["dimension"], c["code"], c["source"]) for c in coded] == [
        (1, "topic", "working_time", "workbench"), (2, "topic", "managing_work", "workbench"),
        (3, "function", "question", "workbench")]  # fmt: skip
    # The undone coding is kept in the history, superseded.
    undone = query(db, "SELECT count(*) AS n FROM codings c JOIN observations o USING (observation_id) "
                       "WHERE coder = 'anna' AND o.seq = 4 AND superseded_at IS NOT NULL")  # fmt: skip
    assert undone[0]["n"] == 1
    assert query(db, f"SELECT text, corrected FROM utterances WHERE recording_id = '{rid}' AND seq = 4") == \
        [{"text": "Korjattu lause työpäivistä.", "corrected": True}]  # fmt: skip


def test_speakers_are_assigned_and_merged_in_the_browser(served, page):
    db, base, token, rid = served
    page.goto(f"{base}/r/{rid}/speakers")
    row = page.locator("tr[data-label='SPEAKER_00']")
    row.locator("input[name=participant]").fill("G1-P01")
    row.locator("select[name=role]").select_option("leader")
    with page.expect_navigation():
        row.locator("form.assign button").click()
    assert "G1-P01 (leader)" in page.locator("tr[data-label='SPEAKER_00'] .who").text_content()
    other = page.locator("tr[data-label='SPEAKER_01']")
    other.locator("select[name=into]").select_option("SPEAKER_00")
    with page.expect_navigation():
        other.locator("form.merge button").click()
    assert "G1-P01 (leader)" in page.locator("tr[data-label='SPEAKER_01'] .who").text_content()

    page.goto(f"{base}/r/{rid}")
    page.wait_for_selector(".row")
    labels = query(db, f"SELECT seq, speaker_label FROM utterances WHERE recording_id = '{rid}' ORDER BY seq")
    for i, r in enumerate(labels):
        shown = page.locator(".row").nth(i).locator(".speaker").text_content()
        assert ("G1-P01" in shown) == (r["speaker_label"] in ("SPEAKER_00", "SPEAKER_01")), (r, shown)
    assert query(db, f"SELECT speaker_label, participant_id, role FROM current_speaker_assignments "
                     f"WHERE recording_id = '{rid}' ORDER BY 1") == [
        {"speaker_label": "SPEAKER_00", "participant_id": "G1-P01", "role": "leader"},
        {"speaker_label": "SPEAKER_01", "participant_id": "G1-P01", "role": "leader"}]  # fmt: skip
    # The plots read the merged person as one speaker.
    page.goto(f"{base}/r/{rid}/plots")
    assert page.locator("svg.plot").count() >= 4
    assert "G1-P01 (leader)" in page.content()


def test_a_coding_made_while_another_program_writes_lands_when_it_is_free(served, page):
    db, base, token, rid = served
    page.goto(f"{base}/r/{rid}")
    page.wait_for_selector(".row")
    page.keyboard.press("j")  # the first row
    page.keyboard.press("j")
    page.keyboard.press("d")  # function
    holder = connect_when_free(db)  # as an ingest's load transaction holds the file
    try:
        page.keyboard.press("4")  # function: support, on row 2
        page.wait_for_function("document.getElementById('status').textContent.includes('Database busy')")
        assert "support" in page.locator(".row").nth(1).locator(".cell[data-dim='function']").text_content()
    finally:
        holder.close()
    page.wait_for_function("document.getElementById('status').textContent === 'saved'")
    landed = query(db, "SELECT seq, code FROM current_codings WHERE coder = 'anna' AND dimension = 'function'")
    assert {(r["seq"], r["code"]) for r in landed} == {(2, "support"), (3, "question")}
    assert page.evaluate("localStorage.getItem('emessi-pending')") == "[]"


def connect_when_free(db: Path) -> duckdb.DuckDBPyConnection:
    """A writer of this test process, once the workbench has let go of the file (it keeps its
    writer open up to a second after a write)."""
    for _ in range(50):
        try:
            return duckdb.connect(str(db))
        except duckdb.IOException:
            time.sleep(0.1)
    return duckdb.connect(str(db))


def set_path(db: Path, rid: str, path: str) -> str:
    con = connect_when_free(db)
    try:
        (before,) = con.execute("SELECT path FROM recordings WHERE recording_id = ?", [rid]).fetchone()
        con.execute("UPDATE recordings SET path = ? WHERE recording_id = ?", [path, rid])
        return before
    finally:
        con.close()


def test_missing_media_leaves_the_page_usable_and_says_where(served, page, tmp_path):
    db, base, token, rid = served
    path = str(tmp_path / "moved" / "meeting.mp4")  # as if the file had been moved away
    before = set_path(db, rid, path)
    try:
        page.goto(f"{base}/r/{rid}")
        page.wait_for_selector(".row")
        assert path in page.locator("#media-missing").text_content()
        assert page.locator("#media").count() == 0
        assert _request(base, f"/media/{rid}", token)[0] == 404
    finally:
        set_path(db, rid, before)


def test_a_request_naming_another_host_is_refused(served):
    _, base, token, _ = served
    port = base.rsplit(":", 1)[1]
    status, _, body = _request(base, "/", token, {"Host": f"rebound.example:{port}"})
    assert status == 403 and b"rebound.example" in body
    assert _request(base, "/", token, {"Host": f"localhost:{port}"})[0] == 200


def test_workbench_codings_are_batches_in_the_coding_history(served):
    db, base, token, rid = served
    (obs,) = query(db, f"SELECT observation_id FROM utterances WHERE recording_id = '{rid}' AND seq = 3")
    history = emessi("coding", "history", obs["observation_id"], "--db", db, "--json").stdout
    events = json.loads(history)
    assert any("question" in json.dumps(e) and "workbench" in json.dumps(e) for e in events["events"]), history
    # The coder is the registered one; an unknown name is refused before the server starts.
    assert query(db, "SELECT coder, source FROM coders WHERE coder = 'anna'") == [{"coder": "anna", "source": "workbench"}]
    refused = emessi("serve", "--db", db, "--coder", "nobody", "--no-browser", code=2).output
    assert "no coder 'nobody'" in refused and "--new-coder" in refused and len(refused.strip().splitlines()) <= 3


def test_review_items_are_resolved_in_the_browser(served, page):
    db, base, token, rid = served
    page.goto(f"{base}/review?recording={rid}")
    first = page.locator("table.review tbody tr[data-id]").first
    oid = first.get_attribute("data-id")
    with page.expect_navigation():
        first.locator("button[data-outcome='kept']").click()
    page.reload()
    assert page.locator(f"tr[data-id='{oid}']").count() == 0
    page.goto(f"{base}/review?all=1&recording={rid}")
    assert "kept by anna" in page.locator(f"tr[data-id='{oid}'] .resolve").text_content()
    listed = json.loads(emessi("review", "--all", "--json", "--db", db).stdout)
    items = listed["items"] if isinstance(listed, dict) else listed
    (item,) = [i for i in items if i["observation_id"] == oid]
    assert item["resolution"]["outcome"] == "kept" and item["resolution"]["resolved_by"] == "anna"


def test_an_observation_is_moved_and_an_assignment_undone_in_the_browser(served, page):
    db, base, token, rid = served
    page.goto(f"{base}/r/{rid}")
    page.wait_for_selector(".row")
    (row,) = query(db, f"SELECT observation_id, speaker_label FROM utterances WHERE recording_id = '{rid}' AND seq = 5")
    to = "SPEAKER_02" if row["speaker_label"] != "SPEAKER_02" else "SPEAKER_03"
    page.locator(".row").nth(4).click()
    page.keyboard.press(" ")
    page.select_option("#move select[name=label]", to)
    with page.expect_navigation():
        page.click("#move button")
    assert query(db, f"SELECT speaker_label FROM utterances WHERE observation_id = '{row['observation_id']}'") == \
        [{"speaker_label": to}]  # fmt: skip
    assert query(db, "SELECT speaker_label, moved_by FROM speaker_corrections WHERE superseded_at IS NULL") == \
        [{"speaker_label": to, "moved_by": "anna"}]  # fmt: skip

    # An assignment, then u: the label is unassigned again; both rows stay in the history.
    page.goto(f"{base}/r/{rid}/speakers")
    line = page.locator("tr[data-label='SPEAKER_02']")
    line.locator("input[name=participant]").fill("G1-P02")
    with page.expect_navigation():
        line.locator("form.assign button").click()
    assert "G1-P02" in page.locator("tr[data-label='SPEAKER_02'] .who").text_content()
    with page.expect_navigation():
        page.keyboard.press("u")
    assert "unassigned" in page.locator("tr[data-label='SPEAKER_02'] .who").text_content()
    assert query(db, f"SELECT participant_id, superseded_at IS NULL AS now FROM speaker_assignments "
                     f"WHERE recording_id = '{rid}' AND speaker_label = 'SPEAKER_02' ORDER BY assigned_at") == \
        [{"participant_id": "G1-P02", "now": False}, {"participant_id": None, "now": True}]  # fmt: skip
    assert page.errors == []


def test_a_suggestion_from_voiceprints_is_shown_and_confirmed_in_the_browser(served, page):
    from emessi_pipeline.dataset.connection import open_writer
    from emessi_pipeline.dataset.voiceprints import Suggestion, apply

    db, base, token, rid = served
    emessi("participants", "add", "G1-P07", "--group", "G1", "--db", db)
    # What `emessi speakers suggest --apply` records, without computing the voiceprints here.
    with open_writer(db, wait=30) as con:
        (applied,) = apply(con, rid, [Suggestion("SPEAKER_03", "G1-P07", 0.912)], 0.5)
    assert applied.outcome == "assigned"
    page.goto(f"{base}/r/{rid}/speakers")
    who = page.locator("tr[data-label='SPEAKER_03'] .who")
    assert "G1-P07" in who.text_content() and "suggested from voiceprints, score 0.91" in who.text_content()
    with page.expect_navigation():
        who.locator("form.confirm button").click()
    assert page.locator("tr[data-label='SPEAKER_03'] .who .auto").count() == 0
    assert query(db, f"SELECT participant_id, assigned_by, score FROM current_speaker_assignments "
                     f"WHERE recording_id = '{rid}' AND speaker_label = 'SPEAKER_03'") == \
        [{"participant_id": "G1-P07", "assigned_by": "anna", "score": None}]  # fmt: skip
    assert page.errors == []


def test_serve_says_what_is_wrong_in_one_line(tmp_path):
    result = emessi("serve", "--db", tmp_path / "none.duckdb", "--no-browser", code=2)
    assert "no such database" in result.output and "Traceback" not in result.output
    assert "Example" in emessi("serve", "--help").output
