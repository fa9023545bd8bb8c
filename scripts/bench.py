"""The speed benchmark: training and planning against the reference PyTorch Diffuser.

    python scripts/bench.py                       # every section; writes results/bench.{md,json}
    python scripts/bench.py --sections plan       # some of: train plan throughput startup
    python scripts/bench.py --smoke --out /tmp/b  # tiny shapes, one repetition (what CI runs)

Rows are kept per device: a run on a GPU adds its rows to the page next to the CPU rows.

- ``train``: steps/s of the Maze2D configs' real training step on the regenerated datasets
  (batch 32, as the reference was measured).
- ``plan``: latency of one plan call, U-Maze shapes (horizon 128, 64 levels, batch 1 and 64
  candidates, DDIM, warm start) and value-guided locomotion shapes (observation 11, action 3,
  horizon 32, 20 levels, 64 candidates, 2 value-gradient steps per level), both ways of iterating
  the levels (``plan.loop``: ``scan`` or ``python``).
- ``throughput``: plans per second at batch 1024.
- ``startup``: wall time of a whole ``planner plan`` process without the persistent compilation
  cache, with an empty cache, and with a warm one (needs a trained run, ``--run``).

Timing: compile time is what JAX reports for tracing, lowering and XLA compilation during the
first call; the first call is timed alone; then one warm-up call and ``--repeats`` timed calls,
each ending in ``block_until_ready`` (median and range). Memory: XLA's buffer plan of the compiled
scan sampler (arguments + outputs + temporaries), and the process's peak resident memory after a
training row. Networks for planning are freshly initialized: timing does not depend on weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

from planner.config import load_config
from planner.data.normalize import Normalizer
from planner.diffusion.denoisers import in_precision, network_denoiser
from planner.diffusion.samplers import (
    SamplerSpec,
    network_evaluations,
    resolved_loop,
    sample,
    sample_in_one_scan,
)
from planner.diffusion.schedule import cosine_schedule
from planner.energies.terms import value_term
from planner.models.denoiser import make_predict_fn, make_unet
from planner.models.unet import init_params
from planner.models.value import ValueNet
from planner.provenance import git_revision
from planner.runtime import compile_events
from planner.training import load_windows, make_trainer

SECTIONS = ("train", "plan", "throughput", "startup")
# PyTorch Diffuser on this 2-core machine type (shared/specs/reference-results.md)
REFERENCE = {"train": 5.0, "umaze": 0.49, "locomotion": 2.05}
TARGET_SPEEDUP = {"train": 1.3, "umaze": 3.0, "locomotion": 3.0}
CONFIGS = [f"configs/maze2d-{maze}.yaml" for maze in ("umaze", "medium", "large")]


def timed_calls(call: Callable[[int], object], repeats: int) -> dict:
    """Compile seconds and wall time of the first ``call(0)``, then one warm-up and ``repeats``
    timed calls (each blocked until ready): median, min, max seconds."""
    with compile_events() as events:
        began = time.perf_counter()
        jax.block_until_ready(call(0))
        first = time.perf_counter() - began
    compile_seconds = sum(seconds for _, seconds in events)
    jax.block_until_ready(call(1))
    times = []
    for index in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(call(2 + index))
        times.append(time.perf_counter() - began)
    return {
        "compile_s": round(compile_seconds, 2),
        "first_call_s": round(first, 2),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }


# --- training ---------------------------------------------------------------------------------


def bench_training(config_path: str, smoke: bool, repeats: int, per_dispatch: int = 1) -> dict:
    """Steps/s of ``config_path``'s training step, ``per_dispatch`` steps per call (> 1: a
    ``lax.scan``)."""
    smoke_overrides = [
        "model.dim=8", "model.dim_mults=[1, 2]", "data.horizon=16", "data.generate_steps=3000",
    ]  # fmt: skip
    overrides = ["train.batch_size=32", f"train.steps_per_dispatch={per_dispatch}"]
    config = load_config(config_path, overrides + (smoke_overrides if smoke else []))
    windows = load_windows(config)
    state, chunk, _ = make_trainer(config, "diffusion", windows)
    steps = per_dispatch if smoke or per_dispatch > 1 else 10
    holder = [state]

    def call(_: int):
        for _ in range(steps // per_dispatch):
            holder[0], metrics = chunk(holder[0], windows)
        return metrics

    timing = timed_calls(call, repeats)
    rates = [steps / timing[key] for key in ("median_s", "max_s", "min_s")]
    return {
        "config": config_path,
        "horizon": config.data.horizon,
        "batch": 32,
        "steps_per_dispatch": per_dispatch,
        "steps_timed": steps,
        "compile_s": timing["compile_s"],
        "first_call_s": timing["first_call_s"],
        "steps_per_s": round(rates[0], 2),
        "steps_per_s_range": [round(rates[1], 2), round(rates[2], 2)],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# --- planning ---------------------------------------------------------------------------------


def build_shapes(shapes: str, smoke: bool) -> dict:
    """The networks, schedule and value term of one benchmark shape (freshly initialized):
    ``umaze`` or ``locomotion``, optionally followed by `` bfloat16`` (the denoiser's compute
    dtype, ``plan.precision``)."""
    name, _, precision = shapes.partition(" ")
    if name == "umaze":
        overrides, action_dim, observation_dim = [], 2, 4
    else:
        overrides = [
            "model.dim_mults=[1, 2, 4, 8]",
            "data.horizon=32",
            "diffusion.n_diffusion_steps=20",
        ]
        action_dim, observation_dim = 3, 11
    if smoke:
        overrides += ["model.dim=8", "model.dim_mults=[1, 2]", "diffusion.n_diffusion_steps=4"]
    config = load_config("configs/maze2d-umaze.yaml", overrides)
    horizon = 16 if smoke else config.data.horizon
    dim = action_dim + observation_dim
    schedule = cosine_schedule(config.diffusion.n_diffusion_steps)
    x, t = jnp.zeros((1, horizon, dim)), jnp.zeros((1,), jnp.int32)
    unet = make_unet(config, dim)
    params = init_params(unet, jax.random.key(0), x, t)
    normalizer = Normalizer(jnp.zeros(dim), jnp.ones(dim))
    terms = ()
    if name == "locomotion":
        model = config.model
        value_net = ValueNet(model.dim, model.dim_mults, model.kernel_size, model.attention)
        value_params = init_params(value_net, jax.random.key(1), x, t)
        terms = (value_term(value_net.apply, value_params, normalizer),)  # 2 steps, scale 0.1
    predict = in_precision(make_predict_fn(unet, config), precision or "float32")
    return {
        "denoiser": network_denoiser(params, predict, schedule, False),
        "schedule": schedule,
        "terms": terms,
        "normalizer": normalizer,
        "dim": dim,
        "horizon": horizon,
        "action_dim": action_dim,
    }


def sampler_arguments(shapes: dict, spec: SamplerSpec, batch: int) -> tuple:
    """``sample``'s arguments after the keys: start conditioned, warm start if ``start_level``."""
    horizon, dim = shapes["horizon"], shapes["dim"]
    mask = jnp.zeros((1, horizon, dim), bool).at[0, 0, shapes["action_dim"] :].set(True)
    values = jnp.zeros((batch, horizon, dim))
    previous = None if spec.start_level is None else jnp.zeros((batch, horizon, dim))
    return (
        spec, shapes["schedule"], shapes["denoiser"], shapes["terms"], shapes["normalizer"],
        mask, values, previous,
    )  # fmt: skip


def planned_memory_mb(shapes: dict, spec: SamplerSpec, batch: int) -> float:
    """XLA's buffer plan for the one-scan sampler: arguments + outputs + temporaries, MB."""
    keys = jax.random.split(jax.random.key(0), batch)
    compiled = sample_in_one_scan.lower(keys, *sampler_arguments(shapes, spec, batch)).compile()
    memory = compiled.memory_analysis()
    total = memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
    return round(total / 2**20, 1)


def bench_plan(shapes: dict, spec: SamplerSpec, batch: int, repeats: int) -> dict:
    arguments = sampler_arguments(shapes, spec, batch)

    def call(seed: int):
        keys = jax.random.split(jax.random.key(seed), batch)
        return sample(keys, *arguments).trajectories

    timing = timed_calls(call, repeats)
    return {
        **timing,
        "batch": batch,
        "loop": resolved_loop(spec, batch),
        "network_evaluations": network_evaluations(spec, shapes["schedule"].n_steps),
        "plans_per_s": round(batch / timing["median_s"], 2),
        "planned_memory_mb": planned_memory_mb(shapes, spec, batch),
    }


def plan_cases(smoke: bool) -> list[tuple[str, str, SamplerSpec, int]]:
    """``(shapes, label, spec, batch)`` of the latency section."""
    ddim = SamplerSpec(method="ddim")

    def levels(n: int) -> int:
        return max(1, n // (16 if smoke else 1))

    rows = [
        ("umaze", "DDPM, every level (reference settings)", SamplerSpec(loop="scan"), 1),
        ("umaze", "DDPM, every level (reference settings)", SamplerSpec(loop="python"), 1),
        ("umaze", "DDPM, 64 candidates", SamplerSpec(loop="python"), 64),
        ("umaze", "DDIM, 16 levels", ddim.replace(n_steps=levels(16)), 1),
        ("umaze", "DDIM, 8 levels", ddim.replace(n_steps=levels(8)), 1),
        ("umaze", "DDIM, 4 levels", ddim.replace(n_steps=levels(4)), 1),
        ("umaze", "DDIM, 2 levels (the fast setting)", ddim.replace(n_steps=2), 1),
        ("umaze", "warm start from level 15", SamplerSpec(start_level=levels(15)), 1),
        ("locomotion", "value-guided DDPM, 1 candidate", SamplerSpec(), 1),
        (
            "locomotion",
            "value-guided DDPM, 64 candidates (reference settings)",
            SamplerSpec(loop="scan"),
            64,
        ),
        (
            "locomotion",
            "value-guided DDPM, 64 candidates (reference settings)",
            SamplerSpec(loop="python"),
            64,
        ),
        ("locomotion", "value-guided DDIM 10 levels, 64 candidates", ddim.replace(n_steps=10), 64),
    ]
    mixed_precision = [  # bfloat16 is emulated on CPU: measured on accelerators only
        ("umaze bfloat16", "DDPM, every level (reference settings)", SamplerSpec(), 1),
        (
            "locomotion bfloat16",
            "value-guided DDPM, 64 candidates (reference settings)",
            SamplerSpec(),
            64,
        ),
    ]
    return rows + (mixed_precision if jax.default_backend() != "cpu" else [])


def throughput_cases(smoke: bool) -> list[tuple[str, str, SamplerSpec, int]]:
    batch = 8 if smoke else 1024
    return [
        ("umaze", "DDIM, 8 levels", SamplerSpec(method="ddim", n_steps=8), batch),
        ("locomotion", "value-guided DDPM (20 levels)", SamplerSpec(), batch),
    ]


# smoke mode (CI) runs one case per sampler code path: both loops, DDIM, warm start (value
# guidance compiles for tens of seconds even when tiny; tests/test_planning.py covers it)
SMOKE_CASES = {
    ("umaze", "DDPM, every level (reference settings)"),  # both loops
    ("umaze", "warm start from level 15"),
    ("umaze", "DDIM, 8 levels"),
}


def bench_sampling(cases, smoke: bool, repeats: int) -> list[dict]:
    rows, built = [], {}
    for name, label, spec, batch in cases:
        if smoke and (name, label) not in SMOKE_CASES:
            continue
        if name not in built:
            built[name] = build_shapes(name, smoke)
        row = {"shapes": name, "sampler": label, **bench_plan(built[name], spec, batch, repeats)}
        row["reference_settings"] = "reference settings" in label
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# --- startup ----------------------------------------------------------------------------------


def bench_startup(run: Path) -> list[dict]:
    """Wall seconds of ``planner plan --run RUN`` processes: cache off, empty, warm."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "jax-cache"
        for label, setting in (
            ("persistent cache off", "off"),
            ("empty cache (first call)", str(cache)),
            ("warm cache (second call)", str(cache)),
        ):
            env = {**os.environ, "PLANNER_COMPILATION_CACHE": setting}
            env.pop("JAX_COMPILATION_CACHE_DIR", None)
            command = [sys.executable, "-m", "planner.cli", "plan", "--run", str(run)]
            began = time.perf_counter()
            subprocess.run(
                [*command, "--out", str(Path(scratch) / "out")], env=env, check=True,
                capture_output=True,
            )  # fmt: skip
            rows.append({"case": label, "wall_s": round(time.perf_counter() - began, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


# --- the page ---------------------------------------------------------------------------------


def device_name() -> str:
    device = jax.devices()[0]
    return f"{device.platform} ({device.device_kind}, {jax.device_count()} device(s))"


def speedup(row: dict, key: str, smoke: bool) -> str:
    """``ratio× (target T×: met / missed)`` for reference-settings rows, else ``–``."""
    if smoke:
        return "(smoke run)"
    if key == "train":
        ratio = row["steps_per_s"] / REFERENCE["train"]
    elif row.get("reference_settings"):
        ratio = REFERENCE[key.split()[0]] / row["median_s"]
    else:
        return "–"
    target = TARGET_SPEEDUP[key.split()[0]]
    return f"**{ratio:.2f}×** (target {target}×: {'met' if ratio >= target else 'missed'})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def provenance(record: dict, section: str) -> str:
    run = record.get(f"{section}_provenance")
    if run is None:
        return ""
    return f"Measured {run['started']} by `{run['command']}` at git {run['git_revision']}."


def device_section(record: dict) -> list[str]:
    lines = [
        f"## {record['device']}",
        "",
        f"JAX {record['jax']}, {record['platform']}; {record['repeats']} timed repetitions.",
        "",
    ]
    if record["smoke"]:
        lines += ["**Smoke run: tiny networks, no measurement.**", ""]
    if record.get("train"):
        lines += [
            "### Training (batch 32)",
            "",
            provenance(record, "train"),
            "",
            "| config | horizon | steps per dispatch | compile | first call | steps/s (median, range) | vs. reference 5.0 steps/s | peak RSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in record["train"]:
            low, high = row["steps_per_s_range"]
            umaze = "umaze" in row["config"] and row["steps_per_dispatch"] == 1
            lines.append(
                f"| `{row['config']}` | {row['horizon']} | {row['steps_per_dispatch']} | "
                f"{row['compile_s']} s | {row['first_call_s']} s ({row['steps_timed']} steps) | "
                f"{row['steps_per_s']} ({low}–{high}) | "
                f"{speedup(row, 'train', record['smoke']) if umaze else '–'} | "
                f"{row['peak_rss_mb']} MB |"
            )
        lines.append("")
    for title, key in (("Plan latency", "plan"), ("Throughput", "throughput")):
        if not record.get(key):
            continue
        lines += [
            f"### {title}",
            "",
            provenance(record, key),
            "",
            "| shapes | sampler | batch | loop | network evals | compile | first call | median | range | plans/s | XLA memory plan | vs. reference |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in record[key]:
            lines.append(
                f"| {row['shapes']} | {row['sampler']} | {row['batch']} | {row['loop']} | "
                f"{row['network_evaluations']} | {row['compile_s']} s | {row['first_call_s']} s | "
                f"{ms(row['median_s'])} | {ms(row['min_s'])}–{ms(row['max_s'])} | "
                f"{row['plans_per_s']} | {row['planned_memory_mb']} MB | "
                f"{speedup(row, row['shapes'], record['smoke'])} |"
            )
        lines.append("")
    if record.get("startup"):
        lines += [
            f"### Startup: a whole `planner plan --run {record['startup_run']}` process",
            "",
            provenance(record, "startup"),
            "",
            "| compilation cache | wall time |",
            "|---|---|",
            *[f"| {row['case']} | {row['wall_s']} s |" for row in record["startup"]],
            "",
        ]
    return lines


def markdown(records: dict, notes: str) -> str:
    lines = [
        "# Speed benchmarks",
        "",
        "`make bench` (`python scripts/bench.py`); what each section measures and how is in the "
        "script's docstring. Reference figures are PyTorch Diffuser measured on the same 2-core "
        "machine type (shared/specs/reference-results.md), not in these runs: 5.0 training "
        "steps/s (U-Maze, batch 32), 0.49 s per U-Maze plan (batch 1, 64 levels), 2.05 s per "
        "value-guided locomotion plan (64 candidates, 20 levels). Speed-ups are given only for "
        "rows at the reference's settings.",
        "",
    ]
    for record in records.values():
        lines += device_section(record)
    return "\n".join(lines) + ("\n" + notes if notes else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", type=Path, default=Path("runs/maze2d-umaze-cpu"))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one repetition")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--render", action="store_true", help="only rewrite bench.md from json")
    args = parser.parse_args()
    if args.render:
        write_page(args.out)
        return
    repeats = 1 if args.smoke else args.repeats
    # a fresh persistent cache: first calls still compile cold, while the XLA memory plan (a
    # second compile of the scan sampler a row has just run) reads it back
    scratch_cache = tempfile.mkdtemp(prefix="bench-jax-cache-")
    jax.config.update("jax_compilation_cache_dir", scratch_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    record = {
        "device": device_name(),
        "command": "python scripts/bench.py " + " ".join(sys.argv[1:]),
        "jax": jax.__version__,
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "date": time.strftime("%Y-%m-%d"),
        "repeats": repeats,
        "smoke": args.smoke,
    }
    for section in args.sections:  # sections not run keep their earlier rows and provenance
        record[f"{section}_provenance"] = {
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "git_revision": record["git_revision"],
            "command": record["command"],
        }
    if "train" in args.sections:
        configs = CONFIGS[:1] if args.smoke else CONFIGS
        record["train"] = [bench_training(path, args.smoke, repeats) for path in configs]
        # the XLA:CPU loop penalty (jax-ml/jax#12868) behind ``steps_per_dispatch: 1``
        record["train"].append(bench_training(CONFIGS[0], args.smoke, repeats, per_dispatch=2))
    if "plan" in args.sections:
        record["plan"] = bench_sampling(plan_cases(args.smoke), args.smoke, repeats)
    if "throughput" in args.sections:
        record["throughput"] = bench_sampling(throughput_cases(args.smoke), args.smoke, repeats)
    if "startup" in args.sections and (args.run / "checkpoints").exists():
        record["startup"], record["startup_run"] = bench_startup(args.run), str(args.run)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "bench.json"
    records = json.loads(json_path.read_text()) if json_path.exists() else {}
    records = records if "devices" in records else {"devices": {}}
    previous = records["devices"].get(record["device"], {})
    records["devices"][record["device"]] = {**previous, **record}  # sections not run are kept
    json_path.write_text(json.dumps(records, indent=2) + "\n")
    write_page(args.out)


def write_page(out: Path) -> None:
    """``bench.md`` from ``bench.json`` and the hand-written ``bench_notes.md`` after it."""
    records = json.loads((out / "bench.json").read_text())
    notes_path = out / "bench_notes.md"
    notes = notes_path.read_text() if notes_path.exists() else ""
    (out / "bench.md").write_text(markdown(records["devices"], notes))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")


if __name__ == "__main__":
    main()
