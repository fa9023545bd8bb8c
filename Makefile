# Every command a person runs. `make demo` and `make test` work on a machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all lint format bench-data bench results-data \
	reproduce-maze2d reproduce-compose reproduce-locomotion reproduce-control reproduce-ogbench \
	sampler-plans \
	hierarchy-settings locomotion-settings data-locomotion training-report gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install planner with its dev tools

demo: setup  ## the whole pipeline on U-Maze in about 10 minutes of CPU: data, train, plan, eval
	$(BIN)/planner data generate maze2d-umaze-v1
	$(BIN)/planner data info maze2d-umaze-v1
	$(BIN)/planner train --config configs/maze2d-umaze-jumpy.yaml --run-dir runs/demo \
		--set train.steps=2000 --set train.checkpoint_every=1000
	$(BIN)/planner plan --run runs/demo --config configs/plans/umaze-obstacle.yaml
	$(BIN)/planner eval --run runs/demo --episodes 25

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

bench: setup  ## training and planning speed on this device (~25 min on 2 CPU cores) -> results/bench.md
	$(BIN)/planner data generate maze2d-umaze-v1
	$(BIN)/planner data generate maze2d-medium-v1
	$(BIN)/planner data generate maze2d-large-v1
	$(BIN)/python scripts/bench.py

reproduce-maze2d: setup  ## data, training (CPU budget), evaluation -> results/maze2d.md
	$(BIN)/python scripts/reproduce.py --suite maze2d --knobs
	$(BIN)/python scripts/reproduce.py --suite maze2d --baselines

reproduce-compose: setup  ## test-time composition scenarios (configs/compose/) -> results/composition.md
	$(BIN)/planner data generate maze2d-umaze-v1
	$(BIN)/planner data generate maze2d-medium-v1
	$(BIN)/python scripts/reproduce.py --suite compose

sampler-plans: setup  ## samplers side by side on first plans, Medium detours -> results/sampler_plans.md (~40 min CPU)
	$(BIN)/planner data generate maze2d-medium-v1
	$(BIN)/python scripts/sampler_plans.py configs/compose/10-samplers-detours-medium.yaml \
		--episodes 25 --layouts "upper route closed" --layouts "lower route closed"

reproduce-locomotion: setup  ## locomotion data, planner + BC at the CPU budget -> results/locomotion.md
	$(BIN)/python scripts/reproduce_locomotion.py

reproduce-ogbench: setup  ## OGBench pointmaze: regenerated data, planner and GCBC -> results/ogbench.md
	$(BIN)/python scripts/reproduce_ogbench.py

reproduce-control: setup  ## closed-loop MPC against open loop on U-Maze -> results/control.md (~1 h CPU)
	$(BIN)/planner data generate maze2d-umaze-v1
	$(BIN)/python scripts/closed_loop.py

hierarchy-settings: setup  ## jumpy-model execution settings per maze -> results/hierarchy_settings.md
	$(BIN)/python scripts/hierarchy_settings.py --tasks umaze medium large

locomotion-settings: setup  ## planner settings chosen on the selection seed -> results/locomotion_settings.md
	$(BIN)/python scripts/locomotion_settings.py --datasets halfcheetah-medium hopper-medium \
		hopper-medium-expert hopper-medium-replay walker2d-medium walker2d-medium-expert

data-locomotion: setup  ## statistics of the regenerated locomotion datasets -> results/data-locomotion.md
	$(BIN)/python scripts/data_stats.py

training-report: setup  ## U-Maze CPU training run and its loss curve -> results/training-umaze-cpu.md (~50 min)
	$(BIN)/planner train --config configs/maze2d-umaze.yaml --set train.steps=7000 \
		--set train.checkpoint_every=1000 --run-dir runs/maze2d-umaze-cpu
	$(BIN)/python scripts/training_report.py runs/maze2d-umaze-cpu --name training-umaze-cpu

gpu-check: setup  ## every GPU step, tiny, on this machine (the lent GPU runs it at size: scripts/gpu_check.py)
	$(BIN)/python scripts/gpu_check.py --smoke --out /tmp/gpu-check-smoke

results-data: bench-data  ## regenerate all three Maze2D datasets and write results/data.md
	$(BIN)/python scripts/data_report.py --force

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
