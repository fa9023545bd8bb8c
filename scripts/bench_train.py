"""Training throughput of the Maze2D configs: compile time and steady-state steps/s.

    python scripts/bench_train.py            # writes results/bench.json and results/bench.md

For each config (its own horizon and network, batch 32 as in the reference measurement) it
builds the real training step on the regenerated dataset, times lowering + compilation, runs one
warm-up call, then times ``--steps`` steps three times and reports the median and spread. It
also measures the same U-Maze step inside a 2-step ``lax.scan`` to document the XLA:CPU
slowdown of convolutions inside loops (jax-ml/jax#12868) that makes ``steps_per_dispatch: 1``
the CPU default.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax

from planner.config import load_config
from planner.provenance import git_revision
from planner.training import load_windows, make_trainer

REFERENCE_STEPS_PER_SECOND = 5.0  # PyTorch Diffuser, U-Maze, batch 32, this machine type (spec)
CONFIGS = [f"configs/maze2d-{maze}.yaml" for maze in ("umaze", "medium", "large")]


def timed_chunk(config_path: str, overrides: list[str]):
    """(compiled chunk, state, windows, compile seconds) for a config."""
    config = load_config(config_path, ["train.batch_size=32", *overrides])
    windows = load_windows(config)
    state, chunk, _ = make_trainer(config, "diffusion", windows)
    began = time.perf_counter()
    state, metrics = chunk(state, windows)  # first call: trace, lower, compile, run once
    jax.block_until_ready(metrics)
    return chunk, state, windows, time.perf_counter() - began, config


def steps_per_second(chunk, state, windows, steps_per_call: int, calls: int) -> list[float]:
    rates = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(calls):
            state, metrics = chunk(state, windows)
        jax.block_until_ready(metrics)
        rates.append(calls * steps_per_call / (time.perf_counter() - began))
    return rates


def bench_config(config_path: str, steps: int) -> dict:
    chunk, state, windows, first_call, config = timed_chunk(config_path, [])
    rates = steps_per_second(chunk, state, windows, 1, steps)
    return {
        "config": config_path,
        "horizon": config.data.horizon,
        "n_diffusion_steps": config.diffusion.n_diffusion_steps,
        "batch_size": 32,
        "first_call_seconds": round(first_call, 1),
        "steps_per_second_median": round(statistics.median(rates), 2),
        "steps_per_second_range": [round(min(rates), 2), round(max(rates), 2)],
    }


def bench_scan(config_path: str) -> dict:
    chunk, state, windows, first_call, _ = timed_chunk(config_path, ["train.steps_per_dispatch=2"])
    rates = steps_per_second(chunk, state, windows, 2, 1)
    return {
        "config": config_path,
        "steps_per_dispatch": 2,
        "first_call_seconds": round(first_call, 1),
        "steps_per_second_median": round(statistics.median(rates), 3),
    }


def markdown(record: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Planning latency (U-Maze and value-guided locomotion shapes, DDPM, DDIM, warm start) "
        "is on its own page: [bench_plan.md](bench_plan.md) (`make bench-plan`).",
        "",
        "## Training throughput (`planner train`)",
        "",
        "`python scripts/bench_train.py` on the regenerated datasets; "
        f"device {record['device']}, JAX {record['jax']}, {record['machine']}, git {record['git_revision']}.",
        "Batch 32 (the reference's measurement batch), one step per dispatch (the CPU default), one",
        f"warm-up call, then {record['steps']} steps timed three times (median, min–max).",
        "",
        "| config | horizon | first call (compile + 1 step) | steps/s (median, range) | vs. reference PyTorch 5.0 steps/s |",
        "|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        low, high = row["steps_per_second_range"]
        ratio = row["steps_per_second_median"] / REFERENCE_STEPS_PER_SECOND
        reference = (
            f"{ratio:.2f}×" if "umaze" in row["config"] else "(reference measured on U-Maze only)"
        )
        lines.append(
            f"| `{row['config']}` | {row['horizon']} | {row['first_call_seconds']} s | "
            f"{row['steps_per_second_median']} ({low}–{high}) | {reference} |"
        )
    scan = record["scan"]
    umaze = record["rows"][0]["steps_per_second_median"]
    lines += [
        "",
        "The reference figure (5.0 steps/s, U-Maze, batch 32) was measured with PyTorch Diffuser on",
        "the same 2-core machine type (shared/specs/reference-results.md), not in this run.",
        "",
        "**The same U-Maze step inside `lax.scan`** (2 steps per dispatch): "
        f"{scan['steps_per_second_median']} steps/s against {umaze} without a loop. XLA:CPU runs",
        "convolutions inside loop bodies far more slowly (jax-ml/jax#12868), so the CPU configs use",
        "`train.steps_per_dispatch: 1`; on accelerators several steps per dispatch remove the",
        "per-step dispatch cost.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repetition")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    record = {
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
        "machine": platform.platform(),
        "git_revision": git_revision(),
        "steps": args.steps,
        "rows": [bench_config(path, args.steps) for path in CONFIGS],
        "scan": bench_scan(CONFIGS[0]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(record, indent=2))
    (args.out / "bench.md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
