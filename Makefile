# Two commands do everything on a fresh clone: `make demo` and `make test`.
# The demo writes its own results to runs/demo (results/ is the committed leaderboard, filled by `xbench submit`).
VENV ?= .venv
PY := $(VENV)/bin/python
XBENCH := $(VENV)/bin/xbench
STAMP := $(VENV)/.installed
DEMO_TASKS ?= xquad-r,mlqa-r
DEMO_OUT ?= runs/demo
DEMO_LANGUAGES ?=
DEMO_RUN = --tasks $(DEMO_TASKS) --output $(DEMO_OUT) $(if $(DEMO_LANGUAGES),--languages $(DEMO_LANGUAGES))

.PHONY: install demo test test-fast lint schema clean experiment bench

install: $(STAMP)

# torch first, pinned (its CPU wheel); constraints.txt keeps every later install from replacing it.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: install
	$(XBENCH) tasks
	$(XBENCH) run --model me5-small $(DEMO_RUN)
	$(XBENCH) run --model use-m3 $(DEMO_RUN)
	$(XBENCH) run --model bm25 $(DEMO_RUN)
	$(XBENCH) report $(DEMO_OUT) --out reports/index.html

# The gates first (style, types, the import contract between pipeline stages), then every test on all cores.
lint: install
	$(VENV)/bin/ruff check xbench tests benchmarks tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -n auto

# The same minus the tests marked slow (real training, process pools, Ray, the wheel): about 2 minutes.
test-fast: lint
	$(PY) -m pytest -n auto -m "not slow"

schema: install
	$(XBENCH) schema --out xbench/results/results.schema.json

clean:
	rm -rf $(VENV) reports/*.html .pytest_cache

experiment: install
	$(XBENCH) experiment experiments/paper-cpu.yaml

# Benchmarks print their figures (nothing asserts a time): harness overhead and warm rerun, xbench vs mteb on the
# same model and data (three languages, to keep mteb's per-pair encoding affordable on a CPU), the whole run path
# at 1M and 5M passages, the BM25 index, encoder batching and int8, the report, and what a training grid saves
# by sharing its models' frozen prefix.
bench: install
	$(PY) benchmarks/bench_overhead.py --model me5-small --tasks xquad-r,mlqa-r
	$(PY) benchmarks/bench_mteb.py --model me5-small --tasks xquad-r,mlqa-r --languages en,de,ar
	$(PY) benchmarks/bench_scale.py --passages 1000000 --passages 5000000 --kill-at 0.5
	$(PY) benchmarks/bench_bm25.py --passages 200000
	$(PY) benchmarks/bench_encoder.py --tasks xquad-r
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_prefix.py --task xquad-r --language de --texts 400 --layers 9,10
