"""How the locomotion planner samples and picks its plans, measured on a selection seed:
results/locomotion_settings.{md,json}.

    python scripts/locomotion_settings.py --datasets hopper-medium
    python scripts/locomotion_settings.py --datasets walker2d-medium --settings "SETTING" ...
    python scripts/locomotion_settings.py --render-only

For each dataset the runs of ``make reproduce-locomotion`` (``runs/<name>-cpu{,-value,-bc}``,
trained by it first; settings acting by inverse dynamics also need ``<name>-cpu-invdyn``, from
``planner train-invdyn --config configs/<name>.yaml --run-dir runs/<name>-cpu-invdyn --set
train.keep_checkpoints=1``) are evaluated under the config file's planner setting and under each
alternative below, with behaviour cloning on the same episodes, on the selection seed (1). The
configs' setting was chosen from this table; ``results/locomotion.md`` reports it on seed 0.
Datasets not named in ``--datasets`` keep their stored rows (when stored with the same seed), and
so do settings not named in ``--settings`` and rows of other models (a setting measured on a
model trained longer adds a row); every row names the revision it was measured at.
Rows named *config* are the configs' setting until git a787d19 (still the setting of the configs
that this table did not move).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from reproduce import RESULTS, record_or_render
from reproduce_locomotion import score_text

from planner.config import load_config
from planner.data.sources import load_episodes
from planner.eval.scoring import run_eval
from planner.provenance import git_revision

STORED = RESULTS / "locomotion_settings.json"

VALUE = "{type: value, run: '{run}-value', t_stopgrad: 2"
# The configs' setting until git a787d19: 4 candidates, Diffuser's 2 value-gradient steps per level
GUIDED = ["plan.average_best=1", f"plan.objectives=[{VALUE}, scale: 0.1, n_guide_steps: 2}}]"]
RANKED = [f"plan.objectives=[{VALUE}, scale: 0.1, n_guide_steps: 0}}]"]  # value ranks only
# act with the inverse-dynamics run toward each plan's next observation (`planner train-invdyn`)
INVERSE_DYNAMICS = "plan.inverse_dynamics='{run}-invdyn'"


def unranked_mean(n: int) -> list[str]:
    """``n`` candidates sampled without the value, their mean executed."""
    return [f"plan.n_candidates={n}", f"plan.average_best={n}", "plan.select=energy",
            "plan.objectives=[]"]  # fmt: skip


SETTINGS: dict[str, list[str]] = {  # name -> overrides of the config file's plan/eval sections
    "16 candidates ranked by value, mean of the best 4": [
        "plan.n_candidates=16",
        "plan.average_best=4",
        *RANKED,
    ],
    "16 candidates ranked by value, mean of the best 4, replan every 2 steps": [
        "plan.n_candidates=16",
        "plan.average_best=4",
        *RANKED,
        "eval.replan_every=2",
    ],
    "8 candidates ranked by value, mean of the best 4": [
        "plan.n_candidates=8",
        "plan.average_best=4",
        *RANKED,
    ],
    "4 candidates, no value, their mean": unranked_mean(4),
    "config: 4 candidates, 2 value-gradient steps per level (scale 0.1), best value": [
        "plan.n_candidates=4",
        *GUIDED,
    ],
    "HalfCheetah's config: 4 candidates, 2 value-gradient steps per level (scale 0.001)": [
        "plan.n_candidates=4",
        "plan.average_best=1",
        f"plan.objectives=[{VALUE}, scale: 0.001, n_guide_steps: 2}}]",
    ],
    "16 candidates ranked by value, no gradient steps": [
        "plan.n_candidates=16",
        "plan.average_best=1",
        *RANKED,
    ],
    "1 candidate, no value (the diffusion model alone)": unranked_mean(1),
    "4 candidates, gradient scale 1.0": [
        "plan.n_candidates=4",
        "plan.average_best=1",
        f"plan.objectives=[{VALUE}, scale: 1.0, n_guide_steps: 2}}]",
    ],
    "config at temperature 0.5 (initial and step noise halved)": [
        "plan.n_candidates=4",
        *GUIDED,
        "plan.noise_scale=0.5",
    ],
    "1 deterministic plan (temperature 0), 2 value-gradient steps per level": [
        "plan.n_candidates=1",
        *GUIDED,
        "plan.noise_scale=0",
    ],
    "the config's setting at temperature 0.5": ["plan.noise_scale=0.5"],
    "the config's setting at temperature 0.25": ["plan.noise_scale=0.25"],
    "the config's setting, 16 candidates, mean of the best 4": [
        "plan.n_candidates=16",
        "plan.average_best=4",
    ],
    "16 candidates at temperature 0.5 ranked by value, mean of the best 4": [
        "plan.n_candidates=16",
        "plan.average_best=4",
        "plan.noise_scale=0.5",
        *RANKED,
    ],
    "4 candidates, gradient scale 0.01": [
        "plan.n_candidates=4",
        "plan.average_best=1",
        f"plan.objectives=[{VALUE}, scale: 0.01, n_guide_steps: 2}}]",
    ],
    "1 deterministic plan (temperature 0), no value": [
        "plan.noise_scale=0",
        "plan.n_candidates=1",
        "plan.average_best=1",
        "plan.select=energy",
        "plan.objectives=[]",
    ],
    "8 candidates, no value, their mean": unranked_mean(8),
    "16 candidates, no value, their mean": unranked_mean(16),
    "8 candidates ranked by value, mean of the best 4, actions by inverse dynamics": [
        "plan.n_candidates=8",
        "plan.average_best=4",
        *RANKED,
        INVERSE_DYNAMICS,
    ],
    "4 candidates, no value, their mean, actions by inverse dynamics": [
        *unranked_mean(4),
        INVERSE_DYNAMICS,
    ],
}


def measure(name: str, seed: int, episodes: int, settings: list[str]) -> dict[str, Any]:
    """The rows of ``settings`` for dataset ``name`` and behaviour cloning on the same
    episodes, each row with the revision it was measured at."""
    config_file = Path("configs") / f"{name}.yaml"
    common = [f"eval.seed={seed}", f"eval.episodes={episodes}"]
    run_dir = Path("runs") / f"{name}-cpu"
    rows = []
    for setting in settings:
        overrides, index = SETTINGS[setting], list(SETTINGS).index(setting)
        out_dir = run_dir / "eval" / f"settings{index}-seed{seed}"
        summary = run_eval(run_dir, config_file, [*common, *overrides], out_dir=out_dir)
        rows.append({
            "setting": setting, "overrides": overrides, "scores": summary["scores"],
            "git_revision": git_revision(), "checkpoint_step": summary["checkpoint_step"],
            "value_steps": sum(summary["value_steps"].values()),  # 0: no value; one at most
        })  # fmt: skip
        print(f"{name} {setting}: {score_text(summary['scores'])}", flush=True)
    bc_dir = Path("runs") / f"{name}-cpu-bc"
    bc = run_eval(bc_dir, config_file, common, out_dir=bc_dir / "eval" / f"settings-seed{seed}")
    return {
        "dataset": name, "rows": rows, "bc": bc["scores"], "git_revision": git_revision(),
        "data": data_fingerprint(config_file),
    }  # fmt: skip


def data_fingerprint(config_file: Path) -> dict[str, Any]:
    """Steps, episodes and summed reward of the config's dataset: regenerated on another
    machine, a dataset of the same name differs (results/data-locomotion.md)."""
    episodes = load_episodes(load_config(config_file).data)
    reward = round(float(episodes.rewards.astype(np.float64).sum()), 1)
    return {"steps": episodes.n_steps, "episodes": episodes.n_episodes, "reward": reward}


def row_key(row: dict[str, Any]) -> tuple[str, int, int]:
    """A row's setting and the training steps of its diffusion and value models (0 where not
    recorded): the table keeps one row per key, so models trained longer add rows."""
    return row["setting"], row.get("checkpoint_step") or 0, row.get("value_steps") or 0


def merged(stored: dict[str, Any] | None, measured: dict[str, Any]) -> dict[str, Any]:
    """``measured``'s rows with the rows of ``stored`` (the same dataset and seed, measured
    before on the same data) whose settings and models were not measured again, in table
    order."""
    stored, keys = stored or {}, {row_key(row) for row in measured["rows"]}
    same_data = stored.get("data") == measured["data"]
    kept = [row for row in stored.get("rows", []) if same_data and row_key(row) not in keys]
    for row in kept:  # rows stored before rows carried their own revision
        row.setdefault("git_revision", stored["git_revision"])
    order = list(SETTINGS)
    rows = sorted(
        [*measured["rows"], *kept],
        key=lambda row: (order.index(row["setting"]), *row_key(row)[1:]),
    )
    return {**measured, "rows": rows}


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Locomotion planner settings (selection seed)",
        "",
        f"Made by `python scripts/locomotion_settings.py --datasets "
        f"{' '.join(record['datasets'])}` (`--settings SETTING` for some rows); git "
        f"{record['git_revision']} (the last command that wrote this page; each row names its "
        f"own), {record['device']}, "
        f"{record['machine']}. Seed {record['seed']} (the selection seed; "
        "results/locomotion.md reports seed 0), normalized score (D4RL references) ± standard "
        "error; the `cpu` runs of `make reproduce-locomotion`. All settings sample with DDIM "
        "over 5 levels and replan at every step unless named otherwise; *decisions / s* counts "
        "every episode's "
        "decisions, 10 episodes batched; *model steps* the diffusion model's training steps "
        "and *value steps* the value model's (— in rows measured before rows recorded them: "
        "the configs' 10,000 and 5,000; none: the setting uses no value). Rows named "
        "*config* are the configs' setting until git a787d19; hopper-medium-replay's and "
        "walker2d-medium's configs now execute the mean "
        "of the best 4 of 16 candidates ranked by value, halfcheetah-medium's the same at "
        "temperature 0.5, hopper-medium-expert's the same with a 45,000-step model and a "
        "20,000-step value, walker2d-medium-expert's the unranked mean of 4 candidates with a "
        "30,000-step model. Rows *actions by inverse dynamics* execute the action a "
        "20,000-step inverse-dynamics model (`planner train-invdyn`) gives toward the plan's "
        "next observation. A setting measured again on a model trained longer adds a row. "
        "A dataset regenerated on another machine "
        "differs (results/data-locomotion.md): measuring a dataset again drops the stored rows "
        "of another dataset of the same name; headings name the data where recorded.",
    ]
    for dataset in record["results"]:
        rows, data = dataset["rows"], dataset.get("data")
        on = f"; data: {data['steps']:,} steps, {data['episodes']:,} episodes" if data else ""
        lines += [
            "",
            f"## {dataset['dataset']} ({rows[0]['scores']['episodes']} episodes per cell{on})",
            "",
            "| planner setting | score | episode length | decisions / s | model steps | "
            "value steps | git |",
            "|---|---|---|---|---|---|---|",
        ]
        bc = {"setting": "behaviour cloning (baseline)", "scores": dataset["bc"]}
        for row in [*rows, bc]:
            scores, revision = row["scores"], row.get("git_revision", dataset["git_revision"])
            steps = f"{row['checkpoint_step']:,}" if "checkpoint_step" in row else "—"
            lines.append(
                f"| {row['setting']} | {score_text(scores)} | {scores['length']['mean']:.0f} | "
                f"{scores['decisions_per_second']} | {steps} | {value_steps_text(row)} | "
                f"{revision} |"
            )
    return "\n".join(lines) + "\n"


def value_steps_text(row: dict[str, Any]) -> str:
    """The training steps of the value model a row's plans were ranked or guided by ("none":
    a value-free setting; "—": measured before rows recorded them)."""
    if "value_steps" not in row:
        return "none" if "plan.objectives=[]" in row.get("overrides", []) else "—"
    return f"{row['value_steps']:,}" if row["value_steps"] else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        metavar="SETTING", help="rows to measure (default: all); the stored "
                        "rows of the other settings are kept")  # fmt: skip
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()

    def measure_all() -> dict[str, Any]:
        """The datasets asked for, measured now, and the stored datasets of the same seed kept."""
        stored = json.loads(STORED.read_text()) if STORED.exists() else {}
        kept = [found for found in stored.get("results", []) if stored.get("seed") == args.seed]
        results = {found["dataset"]: found for found in kept}
        for name in args.datasets:
            measured = measure(name, args.seed, args.episodes, args.settings)
            results[name] = merged(results.get(name), measured)
        return {"datasets": list(results), "seed": args.seed, "results": list(results.values())}

    record_or_render("locomotion_settings", args.render_only, measure_all, markdown)


if __name__ == "__main__":
    main()
