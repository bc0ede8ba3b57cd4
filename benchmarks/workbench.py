"""The workbench on a two-hour meeting: 3,000 observations (synthetic, shaped like real ones; see
database.py), six speakers, the example codebook. Times, through a running `emessi serve` app
over HTTP as a browser calls it: opening the recording page, and a coding round trip (one
keypress: POST /api/code until its answer).

    .venv/bin/python benchmarks/workbench.py --out /tmp/emessi-bench/workbench
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import threading
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from database import load_all, synthetic  # noqa: E402

from emessi_pipeline.dataset.codebook import import_codebook  # noqa: E402
from emessi_pipeline.dataset.connection import open_writer  # noqa: E402
from emessi_pipeline.serve import Settings, create_app  # noqa: E402

CODEBOOK = Path(__file__).resolve().parent.parent / "configs" / "codebook_example.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-bench/workbench"))
    parser.add_argument("--codings", type=int, default=30)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    db = args.out / "bench.duckdb"
    (args.out / "files").mkdir()
    item = synthetic(0, 3000, 10, 6, args.out / "files")
    load_all(db, [item])
    with open_writer(db) as con:
        import_codebook(con, CODEBOOK)
        rid, obs = con.execute("SELECT recording_id, list(observation_id ORDER BY seq) FROM current_observations GROUP BY 1").fetchone()
    settings = Settings(db=db, coder="bench", new_coder=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    opener.open(f"{base}/?token={settings.token}").read()
    pages = []
    for _ in range(3):
        start = time.perf_counter()
        size = len(opener.open(f"{base}/r/{rid}").read())
        pages.append(time.perf_counter() - start)
    trips = []
    codes = ["question", "support", "experience"]
    for i in range(args.codings):
        body = json.dumps({"observation_id": obs[i * 7], "dimension": "function", "codes": [codes[i % 3]]}).encode()
        request = urllib.request.Request(f"{base}/api/code", body, {"Content-Type": "application/json"})
        start = time.perf_counter()
        opener.open(request).read()
        trips.append(time.perf_counter() - start)
    browser = _in_chromium(base, settings.token, rid) if shutil.which("chromium") else None
    server.should_exit = True
    print(json.dumps({
        "observations": len(obs), "page_bytes": size,
        "page_s": {"median": round(statistics.median(pages), 3), "max": round(max(pages), 3)},
        "browser": browser,
        "coding_round_trip_ms": {"median": round(1000 * statistics.median(trips), 1),
                                 "p90": round(1000 * sorted(trips)[int(0.9 * len(trips))], 1)},
    }, indent=2))


# Scrolling is smooth when the browser keeps drawing frames while the list moves: count frames
# (requestAnimationFrame) while the transcript scrolls at a quick reading pace (2,000 px, about
# 30 rows, a second) for 3 s from the middle of the meeting.
SCROLL = """async () => {
  const box = document.querySelector('#transcript');
  box.scrollTop = box.scrollHeight / 2;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const from = box.scrollTop, frames = [], start = performance.now();
  await new Promise(done => {
    function step(now) {
      frames.push(now);
      box.scrollTop = from + 2 * (now - start);
      if (now - start < 3000) requestAnimationFrame(step); else done();
    }
    requestAnimationFrame(step);
  });
  const gaps = frames.slice(1).map((t, i) => t - frames[i]).sort((a, b) => a - b);
  return {scrollable: box.scrollHeight > box.clientHeight, fps: frames.length / 3,
          median_frame_ms: gaps[Math.floor(gaps.length / 2)], p95_frame_ms: gaps[Math.floor(0.95 * gaps.length)],
          worst_frame_ms: gaps[gaps.length - 1]};
}"""


def _in_chromium(base: str, token: str, rid: str) -> dict:
    """Open the recording page in the system Chromium three times: until the load event (HTML
    parsed, script run, rows laid out), then scroll the whole transcript."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/?token={token}")
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            page.goto(f"{base}/r/{rid}", wait_until="load")
            page.locator("#transcript .row[data-id]").last.wait_for(state="attached")
            loads.append(time.perf_counter() - start)
        scroll = page.evaluate(SCROLL)
        browser.close()
    return {"open_s": {"median": round(statistics.median(loads), 3), "max": round(max(loads), 3)},
            "scroll": {k: round(v, 1) if isinstance(v, float) else v for k, v in scroll.items()}}


if __name__ == "__main__":
    main()
