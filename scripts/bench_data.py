"""Throughput of training-batch sampling: windows gathered on device inside jit.

    python scripts/bench_data.py --out results/data_bench.json

For each Maze2D config (its horizon, batch 32, eval_goal segmentation) it times jitted
``sample_windows`` calls one batch per dispatch and 10 batches per dispatch (``lax.scan``, as the
training loop will do), after one warm-up call. The reference trains at ~5 steps/s on this CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

from planner.config import load_config
from planner.data.sources import load_episodes
from planner.data.windows import make_window_dataset, sample_windows
from planner.provenance import git_revision


def time_calls(function, dataset, calls: int) -> float:
    """Seconds per call of ``function(dataset, key)``, after a compile-and-warm-up call."""
    jax.block_until_ready(function(dataset, jax.random.key(0)))
    began = time.perf_counter()
    for seed in range(calls):
        result = function(dataset, jax.random.key(seed))
    jax.block_until_ready(result)
    return (time.perf_counter() - began) / calls


def bench(config_path: str, batch_size: int, calls: int) -> dict:
    config = load_config(config_path)
    dataset = make_window_dataset(
        load_episodes(config.data), config.data.horizon, normalizer_kind=config.data.normalizer
    )
    one = jax.jit(lambda data, key: sample_windows(data, key, batch_size))

    @jax.jit
    def ten(data, key):
        def body(carry, step_key):
            batch = sample_windows(data, step_key, batch_size)
            return carry + batch.trajectories.sum(), None

        total, _ = jax.lax.scan(body, 0.0, jax.random.split(key, 10))
        return total

    per_batch = time_calls(one, dataset, calls)
    per_ten = time_calls(ten, dataset, max(calls // 10, 10))
    return {
        "config": config_path,
        "horizon": config.data.horizon,
        "batch_size": batch_size,
        "windows": dataset.n_windows,
        "batches_per_second_1_per_dispatch": round(1 / per_batch),
        "batches_per_second_10_per_dispatch": round(10 / per_ten),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[f"configs/maze2d-{m}.yaml" for m in ("umaze", "medium", "large")],
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("results/data_bench.json"))
    args = parser.parse_args()
    rows = [bench(path, args.batch_size, args.calls) for path in args.configs]
    record = {
        "device": str(jax.devices()[0]),
        "machine": platform.platform(),
        "local_devices": jax.local_device_count(),
        "git_revision": git_revision(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
