# make demo   set up everything (system packages, .venv, models) and ingest the demo meeting
# make test   run the test suite (sets up first when needed)
PY := .venv/bin/python
STAMP := .venv/.emessi-installed

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml constraints-cpu.txt scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	.venv/bin/emessi demo --folder demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# make bench  the benchmarks of BENCHMARKS.md (about six hours on 2 cores: eight 2-hour runs dominate)
bench: $(STAMP)
	$(PY) benchmarks/speed.py --recording 10min --runs 3
	$(PY) benchmarks/speed.py --recording 2h --runs 1 --skip-library-defaults
	$(PY) benchmarks/idle_core.py --runs 3
	$(PY) benchmarks/database.py
	$(PY) benchmarks/nochange.py --count 100 --out /tmp/emessi-bench/nochange

clean:
	rm -rf demo emessi-work emessi.duckdb .pytest_cache
