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
    server.should_exit = True
    print(json.dumps({
        "observations": len(obs), "page_bytes": size,
        "page_s": {"median": round(statistics.median(pages), 3), "max": round(max(pages), 3)},
        "coding_round_trip_ms": {"median": round(1000 * statistics.median(trips), 1),
                                 "p90": round(1000 * sorted(trips)[int(0.9 * len(trips))], 1)},
    }, indent=2))


if __name__ == "__main__":
    main()
