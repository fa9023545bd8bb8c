"""How the locomotion planner samples and picks its plans, measured on a selection seed:
results/locomotion_settings.{md,json}.

    python scripts/locomotion_settings.py --datasets hopper-medium
    python scripts/locomotion_settings.py --render-only

For each dataset the runs of ``make reproduce-locomotion`` (``runs/<name>-cpu{,-value,-bc}``,
trained by it first) are evaluated under the config file's planner setting and under each
alternative below, with behaviour cloning on the same episodes, on the selection seed (1). The
configs' setting was chosen from this table; ``results/locomotion.md`` reports it on seed 0.
Datasets not named in ``--datasets`` keep their stored rows (when stored with the same seed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reproduce import RESULTS, record_or_render
from reproduce_locomotion import score_text

from planner.eval.command import run_eval
from planner.provenance import git_revision

STORED = RESULTS / "locomotion_settings.json"

VALUE = "{type: value, run: '{run}-value', t_stopgrad: 2"
SETTINGS: dict[str, list[str]] = {  # name -> overrides of the config file's plan section
    "config: 4 candidates, 2 value-gradient steps per level (scale 0.1), best value": [],
    "16 candidates ranked by value, no gradient steps": [
        "plan.n_candidates=16",
        f"plan.objectives=[{VALUE}, scale: 0.1, n_guide_steps: 0}}]",
    ],
    "1 candidate, no value (the diffusion model alone)": [
        "plan.n_candidates=1",
        "plan.select=energy",
        "plan.objectives=[]",
    ],
    "4 candidates, gradient scale 1.0": [
        f"plan.objectives=[{VALUE}, scale: 1.0, n_guide_steps: 2}}]",
    ],
    "config at temperature 0.5 (initial and step noise halved)": ["plan.noise_scale=0.5"],
    "1 deterministic plan (temperature 0), 2 value-gradient steps per level": [
        "plan.noise_scale=0",
        "plan.n_candidates=1",
    ],
    "1 deterministic plan (temperature 0), no value": [
        "plan.noise_scale=0",
        "plan.n_candidates=1",
        "plan.select=energy",
        "plan.objectives=[]",
    ],
}


def measure(name: str, seed: int, episodes: int) -> dict[str, Any]:
    config_file = Path("configs") / f"{name}.yaml"
    common = [f"eval.seed={seed}", f"eval.episodes={episodes}"]
    rows = []
    for index, (setting, overrides) in enumerate(SETTINGS.items()):
        out_dir = Path("runs") / f"{name}-cpu" / "eval" / f"settings{index}-seed{seed}"
        run_dir = Path("runs") / f"{name}-cpu"
        summary = run_eval(run_dir, config_file, [*common, *overrides], out_dir=out_dir)
        rows.append({"setting": setting, "overrides": overrides, "scores": summary["scores"]})
        print(f"{name} {setting}: {score_text(summary['scores'])}", flush=True)
    bc_dir = Path("runs") / f"{name}-cpu-bc"
    bc = run_eval(bc_dir, config_file, common, out_dir=bc_dir / "eval" / f"settings-seed{seed}")
    return {"dataset": name, "rows": rows, "bc": bc["scores"], "git_revision": git_revision()}


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Locomotion planner settings (selection seed)",
        "",
        f"Made by `python scripts/locomotion_settings.py --datasets "
        f"{' '.join(record['datasets'])}`; git {record['git_revision']} (the last command that "
        f"wrote this page; each dataset names its own), {record['device']}, "
        f"{record['machine']}. Seed {record['seed']} (the selection seed; "
        "results/locomotion.md reports seed 0), normalized score (D4RL references) ± standard "
        "error; the `cpu` runs of `make reproduce-locomotion`. All settings sample with DDIM "
        "over 5 levels and replan at every step; *decisions / s* counts every episode's "
        "decisions, 10 episodes batched.",
    ]
    for dataset in record["results"]:
        rows = dataset["rows"]
        lines += [
            "",
            f"## {dataset['dataset']} ({rows[0]['scores']['episodes']} episodes per cell, git "
            f"{dataset['git_revision']})",
            "",
            "| planner setting | score | episode length | decisions / s |",
            "|---|---|---|---|",
        ]
        for row in [*rows, {"setting": "behaviour cloning (baseline)", "scores": dataset["bc"]}]:
            scores = row["scores"]
            lines.append(
                f"| {row['setting']} | {score_text(scores)} | {scores['length']['mean']:.0f} | "
                f"{scores['decisions_per_second']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()

    def measure_all() -> dict[str, Any]:
        """The datasets asked for, measured now, and the stored datasets of the same seed kept."""
        stored = json.loads(STORED.read_text()) if STORED.exists() else {}
        kept = [found for found in stored.get("results", []) if stored.get("seed") == args.seed]
        results = {found["dataset"]: found for found in kept}
        results |= {name: measure(name, args.seed, args.episodes) for name in args.datasets}
        return {"datasets": list(results), "seed": args.seed, "results": list(results.values())}

    record_or_render("locomotion_settings", args.render_only, measure_all, markdown)


if __name__ == "__main__":
    main()
