"""Reproduce the D4RL locomotion table (results/locomotion.{md,json}).

    python scripts/reproduce_locomotion.py                           # every dataset with a config
    python scripts/reproduce_locomotion.py --datasets hopper-medium  # one row
    python scripts/reproduce_locomotion.py --render-only             # rewrite the .md
    python scripts/reproduce_locomotion.py --train-only --datasets walker2d-medium-expert
        # train the runs only, e.g. before choosing a setting on the selection seed
    python scripts/reproduce_locomotion.py --reference-subset --datasets halfcheetah-medium
        # the CPU setting's score against Diffuser's setting on a few short episodes

For each dataset ``<body>-<kind>`` (config ``configs/<body>-<kind>.yaml``): the dataset is
regenerated if missing (``planner data generate``), the diffusion, value and behaviour-cloning
runs ``runs/<body>-<kind>-<budget>{,-value,-bc}`` are trained unless their latest checkpoint
reached the budget's steps (``cpu``: the config's; ``paper``: Diffuser's), then the planner (the config's ``plan`` and ``eval`` sections: the
CPU setting) and BC are evaluated on the same episodes. Rows accumulate in
``results/locomotion.json``, so datasets can be run one at a time. ``--reference-subset`` scores
the CPU setting against Diffuser's on the first ``SUBSET_STEPS`` steps of ``SUBSET_EPISODES``
episodes of trained runs (Diffuser's setting is too slow here for whole episodes).
``--references`` records each body's reference returns on this simulator
(:func:`planner.eval.scoring.locomotion_references`); rows are then also normalized with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from reproduce import read_metrics, read_record, train_unless_done, training_record

from planner.config import load_config
from planner.data.sources import load_episodes
from planner.eval.locomotion import (
    evaluate_locomotion,
    locomotion_summary,
    make_locomotion_policy,
)
from planner.eval.scoring import locomotion_references, run_eval
from planner.paths import RUN_SUFFIXES
from planner.planning.build import plan_config
from planner.planning.run import load_run
from planner.provenance import git_revision
from planner.tasks.base import normalized_score
from planner.tasks.locomotion import LOCOMOTION_TASKS, find_locomotion_task

RESULTS = Path("results")
MACHINE = platform.platform()
DIFFUSER = {  # published normalized scores (shared/specs/reference-results.md), D4RL data
    "hopper-medium": "74.3 ± 1.4",
    "hopper-medium-replay": "93.6 ± 0.4",
    "hopper-medium-expert": "103.3 ± 1.3",
    "walker2d-medium": "79.6 ± 0.55",
    "walker2d-medium-replay": "70.6 ± 1.6",
    "walker2d-medium-expert": "106.9 ± 0.2",
    "halfcheetah-medium": "42.8 ± 0.3",
    "halfcheetah-medium-replay": "37.7 ± 0.5",
    "halfcheetah-medium-expert": "88.9 ± 0.3",
}
# Steps per budget: cpu fits this 2-core machine; paper is Diffuser's (1M diffusion, 200k value).
TABLE_KINDS = ("diffusion", "value", "bc")  # the steps column; inverse dynamics where used
BUDGETS = {  # cpu: the config's own steps (10,000 / 5,000 / 20,000 unless it says otherwise)
    "cpu": [],
    "paper": ["train.steps=1000000", "train.value_steps=200000", "train.bc_steps=200000"],
}
# Diffuser's planner (64 candidates, DDPM over every level at temperature 1, 2 value-gradient
# steps per level, the best one executed),
# timed against each config's CPU setting; {run} is the diffusion run's directory.
REFERENCE_SETTING = [
    "plan.n_candidates=64",
    "plan.average_best=1",
    "plan.noise_scale=1.0",
    "plan.method=ddpm",
    "plan.objectives=[{type: value, run: '{run}-value', scale: 0.1, n_guide_steps: 2}]",
]
TIMING_BATCH, TIMING_DECISIONS = 10, 3
SUBSET_EPISODES, SUBSET_STEPS = 4, 100


def shipped_datasets() -> list[str]:
    """Every ``<body>-<kind>`` with a config in configs/."""
    return sorted(name for name in DIFFUSER if (Path("configs") / f"{name}.yaml").is_file())


def train_dataset(
    name: str, budget: str, run_root: Path
) -> tuple[Path, list[str], dict[str, Path]]:
    """Regenerate ``name``'s dataset if missing and train its diffusion, value and BC runs, and
    its inverse-dynamics run where the config acts with one, unless done; returns the config
    file, its overrides and the run directory of each kind."""
    config_file = Path("configs") / f"{name}.yaml"
    overrides = [*BUDGETS[budget], "train.keep_checkpoints=1"]
    config = load_config(config_file, overrides)
    load_episodes(config.data)  # regenerates a missing dataset
    kinds = [*TABLE_KINDS, *(["invdyn"] if config.plan.inverse_dynamics else [])]
    runs = {kind: run_root / f"{name}-{budget}{RUN_SUFFIXES[kind]}" for kind in kinds}
    for kind, run_dir in runs.items():
        train_unless_done(config_file, overrides, run_dir, kind)
    return config_file, overrides, runs


def evaluate_dataset(name: str, budget: str, run_root: Path, episodes: int) -> dict[str, Any]:
    config_file, overrides, runs = train_dataset(name, budget, run_root)
    eval_overrides = [f"eval.episodes={episodes}"]  # the value run: '{run}-value'

    row: dict[str, Any] = {
        "dataset": name,
        "budget": budget,
        "config": str(config_file),
        "overrides": overrides,
        "git_revision": git_revision(),
        "machine": MACHINE,
        "training": {kind: training_record(read_metrics(d)) for kind, d in runs.items()},
    }
    for kind in ("diffusion", "bc"):
        summary = run_eval(runs[kind], config_file, eval_overrides)
        figure = RESULTS / "figures" / f"locomotion-{name}-{budget}-{kind}.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(summary["out_dir"]) / "rollouts.png", figure)
        row[kind] = {
            "scores": summary["scores"],
            "plan": summary["plan"],
            "eval": summary["eval"],
            "eval_seconds": summary["seconds"],
            "checkpoint_step": summary["checkpoint_step"],
            "figure": str(figure.relative_to(RESULTS)),
        }
        print(f"{name} {kind}: {score_text(summary['scores'])}", flush=True)
    row["timing"] = {  # the same batch of episodes, one after the other in this process
        "batch": TIMING_BATCH,
        "cpu_setting": seconds_per_decision(runs["diffusion"], config_file, []),
        "reference_setting": seconds_per_decision(
            runs["diffusion"], config_file, REFERENCE_SETTING
        ),
    }
    return row


def reference_subset(name: str, budget: str, run_root: Path) -> dict[str, Any]:
    """Returns over the first ``SUBSET_STEPS`` steps of episodes ``0..SUBSET_EPISODES - 1``
    (eval seed 0) under the config's CPU setting and under Diffuser's, same run, same starts."""
    config_file = Path("configs") / f"{name}.yaml"
    run = load_run(run_root / f"{name}-{budget}")
    task = dataclasses.replace(
        find_locomotion_task(run.config.data.dataset), max_episode_steps=SUBSET_STEPS
    )
    episodes = [f"eval.episodes={SUBSET_EPISODES}", f"eval.batch_size={SUBSET_EPISODES}"]
    row: dict[str, Any] = {
        "dataset": name, "budget": budget, "episodes": SUBSET_EPISODES, "steps": SUBSET_STEPS,
        "git_revision": git_revision(), "device": jax.devices()[0].platform,
    }  # fmt: skip
    for setting, overrides in (("cpu_setting", []), ("reference_setting", REFERENCE_SETTING)):
        config = plan_config(run, config_file, [*overrides, *episodes], ("plan", "eval"))
        summary = locomotion_summary(evaluate_locomotion(run, config, task), task, None)
        row[setting] = {key: summary[key] for key in ("return", "length", "decisions_per_second")}
        print(f"{name} {setting}: return {row[setting]['return']['mean']:.1f}", flush=True)
    return row


def seconds_per_decision(run_dir: Path, config_file: Path, overrides: list[str]) -> float:
    """Wall seconds of one policy step for ``TIMING_BATCH`` episodes (after compilation),
    median of ``TIMING_DECISIONS``, from the episodes' first observations."""
    run = load_run(run_dir)
    config = plan_config(run, config_file, overrides, ("plan", "eval"))
    task = find_locomotion_task(config.data.dataset)
    policy = make_locomotion_policy(run, config)
    episodes = np.arange(TIMING_BATCH)
    observations = np.stack([task.make_env().reset(seed=int(i))[0] for i in episodes])
    state = policy.init(episodes, observations, np.zeros((TIMING_BATCH, 0)))
    _, state, _ = policy.act(state, observations)  # compiles the replanning call
    seconds = []
    for _ in range(TIMING_DECISIONS):
        began = time.perf_counter()
        _, state, _ = policy.act(state, observations)
        seconds.append(time.perf_counter() - began)
    return float(np.median(seconds))


def score_text(scores: dict[str, Any], key: str = "normalized_d4rl") -> str:
    return f"{scores[key]['mean']:.1f} ± {scores[key]['stderr']:.1f}"


def simulator_score_text(scores: dict[str, Any], references: dict[str, Any] | None) -> str:
    """The mean return ± standard error normalized with this simulator's references (the score
    is affine in the return), or "-" without an expert reference."""
    if references is None or references.get("ref_max") is None:
        return "-"
    low, high = references["ref_min"], references["ref_max"]
    mean = normalized_score(scores["return"]["mean"], low, high)
    return f"{mean:.1f} ± {100 * scores['return']['stderr'] / (high - low):.1f}"


def references_table(references: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines of each body's reference returns here and D4RL's."""
    lines = [
        "",
        "## Reference returns on this simulator",
        "",
        "Made by `python scripts/reproduce_locomotion.py --references` (stored in the data "
        "directory as `<body>.reference.json`). *random*: uniform random actions; *expert*: our "
        "seed-0 expert CrossQ behaviour policy (`planner data generate <body>-expert-v2`), "
        "actions sampled as in its dataset, mean (std); 100 episodes each, seed 0. D4RL's "
        "references are its random and SAC expert policies on mujoco-py simulators.",
        "",
        "| body | random | expert | expert training steps | expert's last evaluation "
        "(deterministic) | D4RL random / expert |",
        "|---|---|---|---|---|---|",
    ]
    for body, record in references.items():
        task, expert = LOCOMOTION_TASKS[body], record.get("expert")
        if expert:
            expert_cells = (
                f"{record['ref_max']:,.1f} ({expert['return_std']:,.1f}) | "
                f"{expert['train_steps']:,} | {expert['last_eval_return']:,.1f}"
            )
        else:
            expert_cells = "not trained | - | -"
        lines.append(
            f"| {body} | {record['ref_min']:,.1f} | {expert_cells} | "
            f"{task.d4rl_ref_min:,.1f} / {task.d4rl_ref_max:,.1f} |"
        )
    return lines


def planner_setting(row: dict[str, Any]) -> str:
    """The planner's sampling and replanning setting of a row, in words."""
    plan, evaluation = row["diffusion"]["plan"], row["diffusion"]["eval"]
    levels = f"DDIM {plan['n_steps']} levels" if plan["method"] == "ddim" else "DDPM"
    guide = next(
        (spec.get("n_guide_steps", 2) for spec in plan["objectives"] if spec["type"] == "value"),
        None,
    )
    warm, averaged = evaluation["warm_start_level"], plan.get("average_best", 1)
    temperature = plan.get("noise_scale", 1.0)
    return (
        f"{plan['n_candidates']} candidates, {levels}, "
        + (f"temperature {temperature:g}, " if temperature != 1.0 else "")
        + ("no value, " if guide is None else f"{guide} value-guide steps, ")
        + (f"mean of the best {averaged}, " if averaged > 1 else "")
        + f"replan every {max(evaluation['replan_every'], 1)}"
        + (f", warm start {warm}" if warm else "")
        + (", actions by inverse dynamics" if plan.get("inverse_dynamics") else "")
    )


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# D4RL locomotion",
        "",
        "Made by `make reproduce-locomotion` (`python scripts/reproduce_locomotion.py`; "
        f"`--datasets NAME` for one row); the last command: git {record['git_revision']}, "
        f"{record['device']}, {record['machine']}. Training wall time as measured on a 2-core "
        "machine, including any other load at the time.",
        "",
        "Normalized score ± standard error over episodes, D4RL's reference returns. *planner*: "
        "the diffusion model planning from the current state, its candidates ranked (and, with "
        "value-guide steps, guided) by the learned value, executing the best plan's actions "
        "(`plan_action_policy`), in the setting listed. "
        "*BC*: an MLP trained on the same windows (first rows), same episodes and simulator. "
        "*Diffuser (published)* is D4RL's own data on mujoco-py `-v2` simulators with 1M "
        "training steps, 64 guided candidates and a replan at every step; ours are datasets "
        "regenerated by D4RL's recipe (results/data-locomotion.md) on Gymnasium's MuJoCo `-v5` "
        "simulators, at the budget listed: like protocols, not identical data or physics. "
        "*this simulator*: planner / BC normalized with the random and expert returns measured "
        'here instead (section below; "-" until that body\'s expert policy is trained).',
        "",
        "| dataset | budget | planner | BC | planner ≥ BC | planner / BC, this simulator | "
        "Diffuser (published) | planner setting | decisions / s (batched) | episodes | "
        "diffusion / value / BC steps | training wall time | eval seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    references = record.get("references", {})
    for row in record["rows"]:
        body_references = references.get(row["dataset"].split("-")[0])
        planner, bc = row["diffusion"]["scores"], row["bc"]["scores"]
        above = planner["normalized_d4rl"]["mean"] >= bc["normalized_d4rl"]["mean"]
        training = row["training"]
        steps = " / ".join(f"{training[kind]['steps']:,}" for kind in TABLE_KINDS)
        if "invdyn" in training:
            steps += f" (inverse dynamics {training['invdyn']['steps']:,})"
        minutes = sum(record["wall_minutes"] for record in training.values())
        lines.append(
            f"| {row['dataset']} | {row['budget']} | {score_text(planner)} | {score_text(bc)} | "
            f"{'yes' if above else '**no**'} | {simulator_score_text(planner, body_references)}"
            f" / {simulator_score_text(bc, body_references)} | {DIFFUSER[row['dataset']]} | "
            f"{planner_setting(row)} | {planner['decisions_per_second']} | "
            f"{planner['episodes']} | {steps} | {minutes:.1f} min | "
            f"{row['diffusion']['eval']['seed']} |"
        )
    lines += ["", "Rows made at: " + "; ".join(
        f"{row['dataset']} {row['budget']}: git {row['git_revision']}"
        + (f" on {row['machine']}" if "machine" in row else "")
        for row in record["rows"]
    ) + ". Rows with no machine named were made on earlier machines, before rows recorded "
        "theirs. Machines differ in speed (decisions / s, training time), and so do the "
        "datasets regenerated on each (results/data-locomotion.md)."]  # fmt: skip
    lines += [
        "",
        "## Seconds per decision: the CPU setting against Diffuser's",
        "",
        "One policy step for a batch of episodes (their first observations), median of "
        f"{TIMING_DECISIONS} after compilation, both settings timed one after the other in the "
        "same process. Diffuser's setting: 64 candidates, DDPM over every level, 2 "
        "value-gradient steps per level. Its score over whole episodes was not measured (a "
        "subset below): at these seconds per "
        "decision, 1,000-step episodes take hours each on this machine.",
        "",
        "| dataset | budget | episodes batched | CPU setting | Diffuser's setting | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        timing = row["timing"]
        ratio = timing["reference_setting"] / timing["cpu_setting"]
        lines.append(
            f"| {row['dataset']} | {row['budget']} | {timing['batch']} | "
            f"{timing['cpu_setting']:.3f} s | {timing['reference_setting']:.3f} s | "
            f"{ratio:.0f}× |"
        )
    subsets = record.get("reference_subsets", [])
    if subsets:
        lines += [
            "",
            "## Score cost of the CPU setting: Diffuser's setting on a subset",
            "",
            "Undiscounted return over the first steps of the listed episodes (eval seed 0, "
            "fewer if the body falls), mean ± standard error, the same run and starts under "
            "both settings (`python scripts/reproduce_locomotion.py --reference-subset "
            "--datasets NAME`). *decisions / s*: every episode's decisions, episodes batched; "
            "the two settings ran one after the other, minutes apart, so for their speed ratio "
            "read the table above. *steps before a fall*: the mean episode length within the "
            "subset's steps.",
            "",
            "| dataset | budget | episodes × steps | CPU setting | Diffuser's setting | "
            "CPU − Diffuser's | steps before a fall: CPU / Diffuser's | "
            "decisions / s: CPU / Diffuser's | git |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in subsets:
            cpu, reference = row["cpu_setting"], row["reference_setting"]
            difference = cpu["return"]["mean"] - reference["return"]["mean"]
            lines.append(
                f"| {row['dataset']} | {row['budget']} | {row['episodes']} × {row['steps']} | "
                f"{score_text(cpu, 'return')} | {score_text(reference, 'return')} | "
                f"{difference:+.1f} | "
                f"{cpu['length']['mean']:.1f} / {reference['length']['mean']:.1f} | "
                f"{cpu['decisions_per_second']} / {reference['decisions_per_second']} | "
                f"{row['git_revision']} |"
            )
    if references:
        lines += references_table(references)
    lines += ["", "## Returns along the episodes", ""]
    for row in record["rows"]:
        for kind in ("diffusion", "bc"):
            lines.append(f"![{row['dataset']} {kind}]({row[kind]['figure']})")
    return "\n".join(lines) + "\n"


def with_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` with ``row`` in place of the one for its dataset and budget, sorted."""
    key = (row["dataset"], row["budget"])
    kept = [r for r in rows if (r["dataset"], r["budget"]) != key]
    return sorted([*kept, row], key=lambda r: (r["budget"], r["dataset"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DIFFUSER))
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--run-root", type=Path, default=Path("runs"))
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md only")
    parser.add_argument(
        "--reference-subset",
        action="store_true",
        help="only score the CPU setting against Diffuser's on a few short episodes",
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="only regenerate missing data and train the runs (e.g. before choosing a setting)",
    )
    parser.add_argument(
        "--references",
        action="store_true",
        help="only record each body's random and expert returns on this simulator",
    )
    args = parser.parse_args()
    json_path = RESULTS / "locomotion.json"
    if args.references:
        record = read_record(json_path)
        record["references"] = {
            body: locomotion_references(task) for body, task in LOCOMOTION_TASKS.items()
        }
        json_path.write_text(json.dumps(record, indent=2) + "\n")
    if args.reference_subset:
        for name in args.datasets or shipped_datasets():
            row = reference_subset(name, args.budget, args.run_root)
            record = read_record(json_path)
            record["reference_subsets"] = with_row(record.get("reference_subsets", []), row)
            json_path.write_text(json.dumps(record, indent=2) + "\n")
    if args.train_only:
        for name in args.datasets or shipped_datasets():
            train_dataset(name, args.budget, args.run_root)
        return
    if not (args.render_only or args.reference_subset or args.references):
        for name in args.datasets or shipped_datasets():
            row = evaluate_dataset(name, args.budget, args.run_root, args.episodes)
            record = read_record(json_path)  # read late: another process may have added a row
            record["rows"] = with_row(record["rows"], row)
            record |= {
                "git_revision": git_revision(),
                "device": jax.devices()[0].platform,
                "machine": MACHINE,
            }
            json_path.write_text(json.dumps(record, indent=2) + "\n")
    record = read_record(json_path)
    (RESULTS / "locomotion.md").write_text(markdown(record))
    print(f"wrote {RESULTS / 'locomotion.md'}", flush=True)


if __name__ == "__main__":
    main()
