# Every command a person runs. `make demo` and `make test` work on a machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all lint format bench-data bench-train bench-plan results-data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install planner with its dev tools

demo: setup  ## regenerate U-Maze (1M steps), summarize it, train its model briefly, and plan
	$(BIN)/planner data generate maze2d-umaze-v1
	$(BIN)/planner data info maze2d-umaze-v1
	$(BIN)/planner train --config configs/maze2d-umaze.yaml --run-dir runs/demo \
		--set train.steps=300 --set train.checkpoint_every=100
	$(BIN)/planner plan --run runs/demo --start 3,1 --goal 1,1 --set plan.n_candidates=8 \
		--set 'plan.constraints=[{type: circle, center: [1.0, 2.0], radius: 0.3}]'

test: setup  ## the fast CPU test suite (what CI runs)
	$(BIN)/pytest -q -m "not slow"

test-all: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check planner tests scripts
	$(BIN)/ruff format --check planner tests scripts

format: setup
	$(BIN)/ruff format planner tests scripts
	$(BIN)/ruff check --fix planner tests scripts

bench-data: setup  ## batch-sampling throughput -> results/data_bench.json
	$(BIN)/python scripts/bench_data.py --out results/data_bench.json

bench-train: setup  ## training steps/s of the Maze2D configs -> results/bench.md
	$(BIN)/python scripts/bench_train.py

bench-plan: setup  ## planning latency (U-Maze and locomotion shapes) -> results/bench_plan.md
	$(BIN)/python scripts/bench_plan.py

results-data: bench-data  ## regenerate all three Maze2D datasets and write results/data.md
	$(BIN)/python scripts/data_report.py --force

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
