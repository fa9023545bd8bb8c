"""The GPU check for a session that is lent a device machine: results/gpu-check.{json,md}.

The device image has JAX with CUDA, Flax, Optax, Orbax, h5py, rich and matplotlib but not the
simulators, and nothing can be fetched there (so the ``cuda`` extra is not installed: the image's
own CUDA build of JAX is used). Here, once, download what it lacks into ``.whl/`` (listed in
``.git/info/exclude``; about 38 MB)::

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform any -d .whl \\
        gymnasium==1.4.0 gymnasium-robotics==1.4.2 mujoco==4.0.0 mujoco-core==4.0.0 \\
        minari==0.5.4 pettingzoo==1.27.0 farama-notifications glfw pyopengl

On the device, one ``run`` call with ``carry: [".whl"]`` and ``timeout_s: 600`` (about 8 minutes)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:. python3 scripts/gpu_check.py --out $OUT

Then here: copy ``gpu-check.json`` from the returned files into results/ and run
``python scripts/gpu_check.py --render-only``. ``--smoke`` runs every step tiny (on any machine).

Each step is a subprocess, timed, so one failure does not stop the others: the versions and
devices; the GPU-relevant tests; U-Maze data; the jumpy U-Maze config trained with 10 steps per
dispatch and evaluated on 100 episodes (score and plan time on this device); Diffuser's flat
U-Maze model trained briefly for its steps/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path("results")
PLANNER = [sys.executable, "-m", "planner.cli"]
TESTS = ["tests/test_samplers.py", "tests/test_model.py", "tests/test_multidevice.py"]
VERSIONS = (
    "import jax, flax, optax, orbax.checkpoint as o, mujoco, gymnasium; "
    "print(jax.__version__, flax.__version__, optax.__version__, o.__version__, "
    "mujoco.__version__, gymnasium.__version__); print(jax.devices())"
)


def planner(arguments: str) -> list[str]:
    """A ``planner`` command line run by this Python (the device has no console script)."""
    return [*PLANNER, *arguments.split()]


def steps(scale: dict[str, int], runs: Path, smoke: bool) -> dict[str, tuple[list[str], int]]:
    """Step name -> (command, timeout in seconds); the timeouts add up to 9 minutes, inside one
    10-minute device call. ``scale``: training steps, steps per dispatch, evaluation episodes."""
    jumpy, flat = runs / "umaze-jumpy", runs / "umaze-flat"
    train = (
        f"train --set train.steps_per_dispatch={scale['per_dispatch']} "
        "--set train.checkpoint_every=1000000"
    )
    smoke_tests = ["-k", "gaussian or one_trace"] if smoke else []
    pytest = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    return {
        "versions and devices": ([sys.executable, "-c", VERSIONS], 30),
        "tests": ([*pytest, *TESTS, *smoke_tests], 150),
        "U-Maze data": (planner("data generate maze2d-umaze-v1"), 60),
        "train jumpy U-Maze": (
            planner(
                f"{train} --config configs/maze2d-umaze-jumpy.yaml --run-dir {jumpy} "
                f"--set train.steps={scale['jumpy']}"
            ),
            120,
        ),
        "eval jumpy U-Maze": (planner(f"eval --run {jumpy} --episodes {scale['episodes']}"), 100),
        "train flat U-Maze (Diffuser's model)": (
            planner(
                f"{train} --config configs/maze2d-umaze.yaml --run-dir {flat} "
                f"--set train.steps={scale['flat']}"
            ),
            80,
        ),
    }


def run_step(command: list[str], timeout: float) -> dict[str, Any]:
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        code, output = "timeout", str(error.stdout or "") + str(error.stderr or "")
    seconds = round(time.perf_counter() - began, 1)
    return {"command": " ".join(command), "exit": code, "seconds": seconds, "tail": output[-1500:]}


def run_results(runs: Path) -> dict[str, Any]:
    """Training speed of both runs and the jumpy run's evaluation, from their own files."""
    found: dict[str, Any] = {}
    for name in ("umaze-jumpy", "umaze-flat"):
        metrics = runs / name / "metrics.jsonl"
        if metrics.is_file():
            last = json.loads(metrics.read_text().splitlines()[-1])
            keys = ("step", "loss", "steps_per_second", "compile_seconds")
            found[name] = {key: last[key] for key in keys}
    for scores in sorted((runs / "umaze-jumpy" / "eval").glob("*/scores.json")):
        summary = json.loads(scores.read_text())
        found["umaze-jumpy eval"] = {"scores": summary["scores"], "eval": summary["eval"]}
    return found


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# GPU check",
        "",
        f"Made by `python scripts/gpu_check.py` on {record['device']} ({record['machine']}), git "
        f"{record['git_revision']}{', smoke scale' if record['smoke'] else ''}. Training steps: "
        f"{record['scale']['jumpy']:,} (jumpy U-Maze) and {record['scale']['flat']:,} (flat), "
        f"{record['scale']['per_dispatch']} per dispatch; {record['scale']['episodes']} "
        "evaluation episodes, seed 0. A step that ran out of time shows `timeout`.",
        "",
        "| step | exit | seconds |",
        "|---|---|---|",
        *[
            f"| {name} | {step['exit']} | {step['seconds']} |"
            for name, step in record["steps"].items()
        ],
        "",
        "```json",
        json.dumps(record["results"], indent=2),
        "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/gpu-check-runs"))
    parser.add_argument("--smoke", action="store_true", help="every step tiny")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from json")
    args = parser.parse_args()
    json_path, md_path = args.out / "gpu-check.json", args.out / "gpu-check.md"
    if args.render_only:
        md_path.write_text(markdown(json.loads(json_path.read_text())))
        return
    import jax

    from planner.provenance import git_revision

    # XLA:CPU runs convolutions inside loops very slowly, so the smoke run dispatches every step
    full = {"jumpy": 4000, "flat": 2000, "per_dispatch": 10, "episodes": 100}
    tiny = {"jumpy": 20, "flat": 20, "per_dispatch": 1, "episodes": 2}
    scale = tiny if args.smoke else full
    record: dict[str, Any] = {
        "device": jax.devices()[0].device_kind,
        "machine": platform.platform(),
        "git_revision": git_revision(),
        "smoke": args.smoke,
        "scale": scale,
        "steps": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (command, timeout) in steps(scale, args.runs, args.smoke).items():
        record["steps"][name] = step = run_step(command, timeout)
        print(f"{name}: exit {step['exit']}, {step['seconds']} s", flush=True)
        record["results"] = run_results(args.runs)
        json_path.write_text(json.dumps(record, indent=2) + "\n")  # what landed so far
    md_path.write_text(markdown(record))
    print(f"wrote {md_path}")


if __name__ == "__main__":
    main()
