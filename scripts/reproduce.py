"""Reproduce the published tables: Maze2D/Multi2D (results/maze2d.md) and the test-time
composition scenarios (results/composition.md).

    python scripts/reproduce.py --suite maze2d                 # CPU budget, all mazes, both models
    python scripts/reproduce.py --suite maze2d --budget paper  # paper-scale steps (a GPU)
    python scripts/reproduce.py --suite maze2d --models jumpy --tasks umaze   # one maze, one model
    python scripts/reproduce.py --suite maze2d --tasks umaze --knobs   # + the speed-knob table
    python scripts/reproduce.py --suite maze2d --baselines     # the no-model and untrained rows
    python scripts/reproduce.py --suite compose                # every configs/compose/*.yaml
    python scripts/reproduce.py --suite compose --scenarios obstacles-umaze

Maze2D, for each task and model (``flat``: Diffuser's one-level model, ``configs/maze2d-<task>.yaml``,
evaluated open loop as in the D4RL protocol; ``jumpy``: the hierarchical planner,
``configs/maze2d-<task>-jumpy.yaml``, evaluated with its config's closed-loop policy): the dataset
is regenerated if missing, the run ``runs/maze2d-<task>[-jumpy]-<budget>`` is trained
(or reused when its latest checkpoint already reached the budget's steps; an unfinished run
resumes), every kept checkpoint is scored on single-task episodes (score against training steps)
and the last one on single-task and Multi2D episodes. ``results/maze2d.{md,json}`` collect every
row measured so far, so tasks can be run one at a time. ``--baselines`` measures, instead of the
models, what the jumpy rows would score without what the model learned: the jumpy config with a
model trained for one step (``runs/maze2d-<task>-jumpy-untrained``), and its policy with no model
at all (``eval.policy: route``, the shortest route over the known walls; that run only supplies
the maze and the ``eval`` section).

Composition: each scenario's trained runs are trained if missing (their config and steps are in
the scenario file), then every layout × method is evaluated (``planner.eval.scenarios``);
``results/composition.{md,json}`` keep every scenario measured so far, the figures go to
``results/figures/compose-<name>.png`` and the hand-written reading of each table comes from
``results/composition_notes.md`` (a ``## <name>`` section per scenario).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from planner.checkpoints import checkpoint_manager
from planner.config import EvalConfig, load_config
from planner.data.sources import generated_path, reference_path
from planner.eval.evaluate import map_assisted
from planner.eval.scenarios import (
    RunSpec,
    load_scenario,
    markdown_section,
    run_scenario,
    term_table,
)
from planner.eval.scoring import run_eval
from planner.provenance import git_revision
from planner.tasks.maze2d import get_maze_task
from planner.training import train, training_steps
from planner.viz.figures import save_figure
from planner.viz.scenarios import plot_scenario

RESULTS = Path("results")
HIERARCHICAL_DIFFUSER = {  # published (Chen et al., ICLR 2024, Table 1), D4RL data and simulator
    ("umaze", False): 128.4,
    ("medium", False): 135.6,
    ("large", False): 155.8,
    ("umaze", True): 144.1,
    ("medium", True): 140.2,
    ("large", True): 165.5,
}
DIFFUSER = {  # published normalized scores (shared/specs/reference-results.md)
    ("umaze", False): "113.9 ± 3.1",
    ("medium", False): "121.5 ± 2.7",
    ("large", False): "123.0 ± 6.4",
    ("umaze", True): "128.9 ± 1.8",
    ("medium", True): "127.2 ± 3.4",
    ("large", True): "132.1 ± 5.8",
}
MODELS = ("flat", "jumpy")
# Training steps per budget and model. cpu: what this 2-core machine trains in under half an
# hour per maze (flat: U-Maze 4.2 steps/s, Medium 2.2, Large 1.4; jumpy: about 10); paper: the
# config files' own steps (flat: Diffuser's 2M).
BUDGETS: dict[str, dict[str, dict[str, list[str]]]] = {
    "cpu": {
        "flat": {
            "umaze": ["train.steps=7000", "train.checkpoint_every=1000"],
            "medium": ["train.steps=3000", "train.checkpoint_every=1000"],
            "large": ["train.steps=2500", "train.checkpoint_every=1250"],
        },
        "jumpy": {
            "umaze": ["train.steps=4000", "train.checkpoint_every=500"],
            "medium": ["train.steps=8000", "train.checkpoint_every=2000"],
            "large": ["train.steps=14000", "train.checkpoint_every=2000"],
        },
    },
    "paper": {model: {"umaze": [], "medium": [], "large": []} for model in MODELS},
}
# Episodes per checkpoint for score against training steps (a Large plan costs ~12x a U-Maze one).
CURVE_EPISODES = {"umaze": 50, "medium": 20, "large": 20}
# The baseline rows of the jumpy configs (--baselines): key -> (row name, eval overrides), both
# evaluated on the run trained for one step with the EMA equal to the parameters.
UNTRAINED = ["train.steps=1", "train.ema_start=0"]
BASELINES: dict[str, tuple[str, list[str]]] = {
    "untrained": ("jumpy, untrained (1 training step)", []),
    "route": ("no model: shortest route + the jumpy policy", ["eval.policy=route"]),
}
NAIVE_REPLANNING = ["eval.policy=mpc", "eval.pin_arrival=false", "eval.latch=false"]
# Faster sampler settings, scored against the default (U-Maze): name -> eval overrides.
KNOBS: dict[str, list[str]] = {
    "default: DDPM, every level, one plan": [],
    "DDIM, 16 levels": ["plan.method=ddim", "plan.n_steps=16"],
    "DDIM, 8 levels": ["plan.method=ddim", "plan.n_steps=8"],
    # the fast setting of results/bench.md, chosen on seed 1 (results/umaze_fast_setting.json)
    "DDIM, 2 levels (the fast setting)": ["plan.method=ddim", "plan.n_steps=2"],
    "horizon 64 (half)": ["plan.horizon=64"],
    # naive replanning (no pinned arrival, no goal latch); results/control.md has real MPC
    "replan every 50 steps from noise": [*NAIVE_REPLANNING, "eval.replan_every=50"],
    "replan every 50 steps, warm start at level 16": [
        *NAIVE_REPLANNING,
        "eval.replan_every=50",
        "eval.warm_start_level=16",
    ],
}


def where_made() -> dict[str, str]:
    """The git revision, device platform and machine a record is made with."""
    return {
        "git_revision": git_revision(),
        "device": jax.devices()[0].platform,
        "machine": platform.platform(),
    }


def record_or_render(
    stem: str,
    render_only: bool,
    measure: Callable[[], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
) -> None:
    """``results/<stem>.json``: what ``measure()`` returns with the git revision, device and
    machine added (with ``render_only``: the stored one), rendered by ``markdown`` to
    ``results/<stem>.md``."""
    json_path = RESULTS / f"{stem}.json"
    if render_only:
        record = json.loads(json_path.read_text())
    else:
        record = {**measure(), **where_made()}
        json_path.write_text(json.dumps(record, indent=2) + "\n")
    markdown_path = RESULTS / f"{stem}.md"
    markdown_path.write_text(markdown(record))
    print(f"wrote {markdown_path}")


def config_path(task: str, model: str) -> Path:
    return Path("configs") / f"maze2d-{task}{'' if model == 'flat' else '-' + model}.yaml"


def train_unless_done(
    config_file: Path, overrides: list[str], run_dir: Path, kind: str = "diffusion"
) -> None:
    """Train (or resume) ``run_dir`` unless its latest checkpoint reached the config's steps."""
    config = load_config(config_file, overrides)
    steps = training_steps(config, kind)
    latest = (
        checkpoint_manager(run_dir).latest_step() if (run_dir / "checkpoints").is_dir() else None
    )
    if latest is None or latest < steps:
        print(f"training {run_dir} ({kind}) to {steps} steps", flush=True)
        train(config, run_dir, kind)


def train_or_reuse(task: str, budget: str, model: str, run_root: Path) -> tuple[Path, list[str]]:
    """The trained run directory of ``task``'s ``model`` at ``budget`` and the overrides it was
    made with."""
    overrides = [*BUDGETS[budget][model][task], "train.keep_checkpoints=null"]
    name = f"maze2d-{task}-{budget}" if model == "flat" else f"maze2d-{task}-{model}-{budget}"
    run_dir = run_root / name
    train_unless_done(config_path(task, model), overrides, run_dir)
    return run_dir, overrides


def train_scenario_run(spec: RunSpec) -> None:
    steps_key = "train.steps" if spec.kind == "diffusion" else "train.value_steps"
    steps = [f"{steps_key}={spec.steps}", f"train.checkpoint_every={spec.steps}"]
    train_unless_done(Path(spec.config), [*steps, *spec.overrides], Path(spec.dir), spec.kind)


def cumulative_minutes(metrics: list[dict[str, Any]]) -> dict[int, float]:
    """Training wall time (minutes) at each logged step of a run's metrics rows, summed over
    resumed sessions (each session's log restarts its clock)."""
    minutes, before, previous = {}, 0.0, 0.0
    for row in (row for row in metrics if "wall_seconds" in row):
        if row["wall_seconds"] < previous:  # a resumed session
            before += previous
        previous = row["wall_seconds"]
        minutes[row["step"]] = (before + previous) / 60
    return minutes


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def read_record(path: Path) -> dict[str, Any]:
    """The rows measured so far (none if the file does not exist yet)."""
    return json.loads(path.read_text()) if path.is_file() else {"rows": []}


def training_record(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps, wall time (all sessions) and last throughput of a run, from its metrics rows."""
    return {
        "steps": metrics[-1]["step"],
        "wall_minutes": round(max(cumulative_minutes(metrics).values()), 1),
        "steps_per_second": metrics[-1]["steps_per_second"],
    }


def refresh_training(row: dict[str, Any]) -> None:
    """A row's training record and its curve's training minutes, read from its run's log where
    the run is on this machine (the log outlives the row: a run trained on later keeps its
    earlier sessions' time)."""
    run_dir = Path(row["run_dir"])
    if not (run_dir / "metrics.jsonl").is_file():
        return
    metrics = read_metrics(run_dir)
    row["training"] = training_record(metrics)
    minutes = cumulative_minutes(metrics)
    for point in row["curve"]:
        if point["step"] in minutes:
            point["minutes"] = round(minutes[point["step"]], 1)


def score_curve(run_dir: Path, config_file: Path, episodes: int) -> list[dict[str, Any]]:
    """Single-task score of every kept checkpoint (``episodes`` episodes, seed 0, the ``plan``
    section of ``config_file``)."""
    curve = []
    for step in sorted(checkpoint_manager(run_dir).all_steps()):
        summary = run_eval(
            run_dir, config_file, overrides=[f"eval.episodes={episodes}"], step=step,
            out_dir=run_dir / "eval" / f"curve-step{step}", show_progress=False,
        )  # fmt: skip
        curve.append({"step": step, **summary["scores"]["normalized_d4rl"]})
        print(f"  step {step}: {curve[-1]['mean']:.1f} ± {curve[-1]['stderr']:.1f}", flush=True)
    return curve


def oracle_score(task: str) -> dict[str, float]:
    """The re-planning oracle controller's score stored with ``task``'s regenerated dataset
    (single-task goal, this simulator): the controller that collected the data."""
    data = load_config(config_path(task, "flat")).data
    maze = get_maze_task(data.dataset)
    steps = data.generate_steps or maze.dataset_steps
    dataset = generated_path(maze, steps, data.generate_seed, data.data_dir)
    oracle = json.loads(reference_path(dataset).read_text())["oracle"]
    return {"return": oracle["mean_return"], "normalized_d4rl": oracle["d4rl_normalized"]}


def evaluate_task(
    task: str, budget: str, model: str, run_root: Path, episodes: int
) -> dict[str, Any]:
    run_dir, overrides = train_or_reuse(task, budget, model, run_root)
    row: dict[str, Any] = {
        "task": task,
        "budget": budget,
        "model": model,
        "config": str(config_path(task, model)),
        "overrides": overrides,
        "run_dir": str(run_dir),
        "oracle": oracle_score(task),
        "git_revision": git_revision(),
        "curve_episodes": CURVE_EPISODES[task],
        "curve": score_curve(run_dir, config_path(task, model), CURVE_EPISODES[task]),
    }
    refresh_training(row)  # training record, and minutes along the curve
    for multi in (False, True):  # plan settings from the config file, as shipped today
        overrides = [f"eval.episodes={episodes}", f"eval.multi_task={multi}"]
        summary = run_eval(run_dir, config_path(task, model), overrides)
        name = "multi2d" if multi else "single"
        suffix = "" if model == "flat" else f"-{model}"
        figure = RESULTS / "figures" / f"maze2d-{task}{suffix}-{budget}-{name}-rollouts.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(summary["out_dir"]) / "rollouts.png", figure)
        row[name] = {
            "scores": summary["scores"],
            "policy": summary["eval"]["policy"],
            "eval_seconds": summary["seconds"],
            "eval_seed": summary["eval"]["seed"],
            "plan_seed": summary["plan"]["seed"],
            "checkpoint_step": summary["checkpoint_step"],
            "figure": str(figure.relative_to(RESULTS)),
        }
    return row


def evaluate_baselines(task: str, run_root: Path, episodes: int) -> list[dict[str, Any]]:
    """The :data:`BASELINES` rows of ``task``'s jumpy config: single-task, ``episodes``
    episodes, the config's seeds, on the run trained for one step (trained if missing)."""
    config = config_path(task, "jumpy")
    run_dir = run_root / f"maze2d-{task}-jumpy-untrained"
    train_unless_done(config, UNTRAINED, run_dir)
    rows = []
    for key, (name, overrides) in BASELINES.items():
        summary = run_eval(
            run_dir, config, [f"eval.episodes={episodes}", "eval.multi_task=false", *overrides],
            out_dir=run_dir / "eval" / f"{key}-seed0", show_progress=False,
        )  # fmt: skip
        rows.append({
            "task": task, "baseline": key, "name": name,
            "map_assisted": map_assisted(EvalConfig(**summary["eval"])),
            "config": str(config), "train_overrides": UNTRAINED, "overrides": overrides,
            "run_dir": str(run_dir), "checkpoint_step": summary["checkpoint_step"],
            "scores": summary["scores"], "eval_seconds": summary["seconds"],
            "eval_seed": summary["eval"]["seed"], "plan_seed": summary["plan"]["seed"],
            "git_revision": summary["git_revision"],
            "command": f"python scripts/reproduce.py --suite maze2d --baselines --tasks {task}",
        })  # fmt: skip
        scores = summary["scores"]["normalized_d4rl"]
        print(f"  {task} {name}: {scores['mean']:.1f} ± {scores['stderr']:.1f}", flush=True)
    return rows


def speed_knobs(run_dir: Path, episodes: int) -> list[dict[str, Any]]:
    rows = []
    for name, overrides in KNOBS.items():
        summary = run_eval(
            run_dir, overrides=[f"eval.episodes={episodes}", *overrides],
            out_dir=run_dir / "eval" / f"knob-{len(rows)}", show_progress=False,
        )  # fmt: skip
        rows.append(
            {"setting": name, "overrides": overrides, "seconds": summary["seconds"],
             **summary["scores"]["normalized_d4rl"],
             "success_rate": summary["scores"]["success_rate"]}
        )  # fmt: skip
        print(f"  {name}: {rows[-1]['mean']:.1f} in {rows[-1]['seconds']} s", flush=True)
    return rows


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Score against training steps (left) and against training wall time (right)."""
    figure, (by_steps, by_minutes) = plt.subplots(1, 2, figsize=(11, 4))
    for index, row in enumerate(rows):  # one colour per row in both panels
        curve = row["curve"]
        means = [point["mean"] for point in curve]
        errors = [point["stderr"] for point in curve]
        label = f"{row['task']} {row.get('model', 'flat')}"
        steps = [point["step"] for point in curve]
        style = {"yerr": errors, "marker": "o", "capsize": 3, "label": label, "color": f"C{index}"}
        by_steps.errorbar(steps, means, **style)
        if all("minutes" in point for point in curve):
            by_minutes.errorbar([point["minutes"] for point in curve], means, **style)
    by_steps.set_xlabel("training steps")
    by_minutes.set_xlabel("training wall time (minutes, this CPU)")
    for ax in (by_steps, by_minutes):
        ax.set_ylabel("normalized score (D4RL refs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(figure, path)


def meets(scores: dict[str, Any], published: float) -> bool:
    """Whether our mean (D4RL references) is at or above a published mean."""
    return scores["normalized_d4rl"]["mean"] >= published


def score_text(scores: dict[str, Any], key: str) -> str:
    return f"{scores[key]['mean']:.1f} ± {scores[key]['stderr']:.1f}"


def planning_cost(scores: dict[str, Any]) -> str:
    """Plans per episode and policy seconds per plan (batched; ``—`` where not recorded)."""
    if "replans_per_episode" not in scores:
        return "1 | —"
    plans = 1 + scores["replans_per_episode"]["mean"]
    seconds = scores["policy_seconds_per_episode"]["mean"] / plans
    return f"{plans:.1f} | {seconds:.3f} s"


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Maze2D and Multi2D",
        "",
        "Made by `make reproduce-maze2d` (`python scripts/reproduce.py --suite maze2d --knobs`, "
        "then `--baselines`; "
        "`--tasks umaze`, `--models jumpy` etc. for part of it); "
        f"git {record['git_revision']} (the last command that wrote this page; each row's own "
        "revision is listed under the table where it was recorded), "
        f"{record['device']}, {record['machine']}. Training wall time is as measured, summed "
        "over resumed sessions, including any other load on this 2-core machine at the time.",
        "",
        "Normalized score ± standard error over episodes. *flat* rows: Diffuser's one-level "
        "model and the D4RL protocol (`planner eval`: one open-loop plan per episode, "
        "conditioned on start and goal, tracked by `(p[t+1] − pos) + (v[t+1] − vel)`). "
        "*jumpy* rows: the hierarchical planner (a model of subgoals `data.jump` steps apart, "
        "their interpolation followed by path pursuit in U-Maze and Medium and by Diffuser's "
        "tracker in Large, receding-horizon replanning every 50 steps and a goal latch; in "
        "U-Maze and Medium each episode's first plan arrives at the earliest of 8 times it can: "
        "its config's `eval` section). *D4RL refs* uses D4RL's "
        "published reference returns; *our refs* the random policy and reused controller "
        "recomputed on this simulator (see results/data.md); *oracle* is the score of the "
        "re-planning waypoint controller that collected each dataset (single-task goal, 100 "
        "episodes), not a ceiling: in U-Maze the jumpy row and the policy with no model score "
        "above it (What the model adds, below, has the rows a model should be measured "
        "against). Evaluation seed 0 for starts and goals, "
        "plan seed 0; settings were chosen on seed 1. *s / plan*: the policy's wall time per "
        "plan, episodes batched as `eval.batch_size` says (25).",
        "",
        "*Diffuser* (Janner et al. 2022) and *HD* (Hierarchical Diffuser, Chen et al. 2024) are "
        "published numbers: D4RL's own datasets on D4RL's mujoco-py simulator. Ours are on "
        "datasets regenerated by D4RL's recipe (results/data.md) and Gymnasium-Robotics' "
        "PointMaze, so the comparison is of like protocols, not identical data or physics.",
        "",
        "| task | model | budget | ours (D4RL refs) | ours (our refs) | success | oracle | "
        "Diffuser (published) | HD (published) | at or above HD | training steps | "
        "training wall time | plans / episode | s / plan | device | config | episodes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        for multi in (False, True):
            result = row["multi2d" if multi else "single"]
            scores = result["scores"]
            name = ("Multi2D " if multi else "") + row["task"].capitalize()
            overrides = " ".join(f"`--set {o}`" for o in row["overrides"])
            published = HIERARCHICAL_DIFFUSER[(row["task"], multi)]
            oracle = f"{row['oracle']['normalized_d4rl']:.1f}" if not multi else "—"
            lines.append(
                f"| {name} | {row['model']} | {row['budget']} | "
                f"{score_text(scores, 'normalized_d4rl')} | "
                f"{score_text(scores, 'normalized_this_simulator')} | "
                f"{100 * scores['success_rate']:.0f} % | {oracle} | "
                f"{DIFFUSER[(row['task'], multi)]} | {published} | "
                f"{'yes' if meets(scores, published) else '**no**'} | "
                f"{row['training']['steps']:,} | {row['training']['wall_minutes']} min | "
                f"{planning_cost(scores)} | {record['device']} | `{row['config']}` {overrides} | "
                f"{scores['episodes']} |"
            )
    lines += ["", "Rows made at: " + "; ".join(
        f"{row['task']} {row['model']} {row['budget']}: "
        + (f"git {row['git_revision']}" if "git_revision" in row else "not recorded per row")
        for row in record["rows"]
    ) + "."]  # fmt: skip
    if not any(row["budget"] == "paper" for row in record["rows"]):
        lines += [
            "",
            "No `paper` rows yet: Diffuser's 2M steps per maze (`--budget paper`) need a GPU. "
            "The `cpu` rows train for about half an hour each, a small fraction of that (score "
            "against training steps below).",
        ]
    if record.get("baselines"):
        lines += baseline_lines(record)
    lines += ["", "## Score against training steps", ""]
    lines += [
        "Single-task, seed 0; episodes per checkpoint as listed.",
        "",
        "![score against training steps](figures/maze2d-score-vs-steps.png)",
        "",
    ]
    for row in record["rows"]:
        points = ", ".join(
            f"{p['step']:,}: {p['mean']:.1f} ± {p['stderr']:.1f}" for p in row["curve"]
        )
        lines.append(
            f"- {row['task']} {row['model']} ({row['budget']}, {row['curve_episodes']} "
            f"episodes): {points}"
        )
    lines += ["", "## Plans and rollouts", ""]
    for row in record["rows"]:
        for name in ("single", "multi2d"):
            lines.append(f"![{row['task']} {row['model']} {name}]({row[name]['figure']})")
    if record.get("knobs"):
        knobs = record["knobs"]
        lines += [
            "",
            f"## Speed knobs (U-Maze, {knobs['episodes']} episodes, run {knobs['run_dir']})",
            "",
            "| sampler setting | score (D4RL refs) | success | eval wall time |",
            "|---|---|---|---|",
        ]
        for knob in knobs["rows"]:
            lines.append(
                f"| {knob['setting']} | {knob['mean']:.1f} ± {knob['stderr']:.1f} | "
                f"{100 * knob['success_rate']:.0f} % | {knob['seconds']} s |"
            )
        lines += [
            "",
            "A replan conditions a fresh full-horizon plan on the current state and the goal and "
            "tracking restarts at its first step, also once the agent has arrived. The Maze2D "
            "windows the model learns from approach the goal and end there (`eval_goal` "
            "segmentation), so a plan that starts at the goal is far from the data, and the "
            "rollouts show agents leaving the goal after a replan. Open-loop planning, as in "
            "Diffuser, is the default for this reason.",
        ]
    return "\n".join(lines) + "\n"


ROUTE_GAP_AIM = -5.0  # issue 38: every jumpy row within 5 % of the no-model row


def baseline_lines(record: dict[str, Any]) -> list[str]:
    """The section comparing each maze's jumpy rows with its :data:`BASELINES` rows: a table,
    then per maze what the model adds and the gap to the no-model row."""
    lines = [
        "",
        "## What the model adds",
        "",
        "Single-task, the jumpy rows' protocol (the config's `eval` section, evaluation seed 0, "
        "plan seed 0). *jumpy, untrained*: the same config and policy with a model trained for "
        "one step (`--set train.steps=1 --set train.ema_start=0`). *no model*: no network at "
        "all, **map-assisted**: each plan is the shortest free route from the agent to the goal "
        "on a 5 cm grid of the known walls (`planner.planning.maze.routes_to`), traversed at "
        "3 m/s (`eval.route_speed`; positions and velocities per step, at rest once at the "
        "goal; `eval.policy: route`, `planner.eval.evaluate.route_plan_fn`) and executed by "
        "the jumpy config's own policy: replanning every 50 steps, path pursuit (U-Maze, "
        "Medium) or Diffuser's tracker (Large), the goal latch. The no-model row's run "
        "directory only supplies the maze and the `eval` section; its model is never called. "
        "Made by "
        "`python scripts/reproduce.py --suite maze2d --baselines` (`--tasks umaze` for one).",
        "",
        "| task | row | map-assisted | ours (D4RL refs) | ours (our refs) | success | "
        "plans / episode | s / plan | eval wall time | run | config | episodes | git |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    findings, verdicts = [], []
    for task in ("umaze", "medium", "large"):
        measured = {r["baseline"]: r for r in record["baselines"] if r["task"] == task}
        baselines = {key: measured[key] for key in BASELINES if key in measured}
        trained = [r for r in record["rows"] if r["task"] == task and r["model"] == "jumpy"]
        if not baselines:
            continue
        for row in trained:
            scores = row["single"]["scores"]
            lines.append(
                f"| {task.capitalize()} | jumpy, trained ({row['budget']}: "
                f"{row['training']['steps']:,} steps; the row above) | no | "
                f"{score_text(scores, 'normalized_d4rl')} | "
                f"{score_text(scores, 'normalized_this_simulator')} | "
                f"{100 * scores['success_rate']:.0f} % | {planning_cost(scores)} | "
                f"{row['single']['eval_seconds']} s | `{row['run_dir']}` | `{row['config']}` | "
                f"{scores['episodes']} | {row.get('git_revision', '—')} |"
            )
        for row in baselines.values():
            scores = row["scores"]
            overrides = "".join(f" `--set {o}`" for o in row["overrides"])
            lines.append(
                f"| {task.capitalize()} | {row['name']} | "
                f"{'**yes**' if row['map_assisted'] else 'no'} | "
                f"{score_text(scores, 'normalized_d4rl')} | "
                f"{score_text(scores, 'normalized_this_simulator')} | "
                f"{100 * scores['success_rate']:.0f} % | {planning_cost(scores)} | "
                f"{row['eval_seconds']} s | `{row['run_dir']}` | `{row['config']}`{overrides} | "
                f"{scores['episodes']} | {row['git_revision']} |"
            )
        contribution, judged = model_contribution(task, trained, baselines)
        findings += contribution
        verdicts += judged
    aim = (
        f"Issue 38's aim, every jumpy row within 5 % of the no-model row: met by {sum(verdicts)} "
        f"of {len(verdicts)}. The no-model rows use the map, so they are a reference for the "
        "execution layer, not a method to compare as an equal."
    )
    return [*lines, "", *findings, "", aim]


def model_contribution(
    task: str, trained: list[dict[str, Any]], baselines: dict[str, dict[str, Any]]
) -> tuple[list[str], list[bool]]:
    """Per trained jumpy row of ``task``: a line with its score minus the untrained row's and
    its gap (%) to the no-model row, and (where that row exists) whether the gap meets
    :data:`ROUTE_GAP_AIM`."""
    lines, verdicts = [], []
    for row in trained:
        score = row["single"]["scores"]["normalized_d4rl"]["mean"]
        parts = []
        if "untrained" in baselines:
            untrained = baselines["untrained"]["scores"]["normalized_d4rl"]["mean"]
            parts.append(f"the model adds {score - untrained:+.1f} ({untrained:.1f} → {score:.1f})")
        if "route" in baselines:
            route = baselines["route"]["scores"]["normalized_d4rl"]["mean"]
            gap = 100 * (score - route) / route
            verdicts.append(gap >= ROUTE_GAP_AIM)
            verdict = "met" if verdicts[-1] else "**not met**"
            parts.append(f"{gap:+.1f} % against no model ({route:.1f}; within 5 %: {verdict})")
        lines.append(f"- {task.capitalize()} ({row['budget']}): " + "; ".join(parts) + ".")
    return lines, verdicts


def scenario_notes(name: str) -> str:
    """The ``## name`` section of results/composition_notes.md (empty if there is none)."""
    path = RESULTS / "composition_notes.md"
    text = path.read_text() if path.is_file() else ""
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1).strip() if match else ""


def scenario_files() -> list[Path]:
    """The shipped scenario files, in the order their sections appear."""
    return sorted(Path("configs/compose").glob("*.yaml"))


def composition_markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Test-time composition",
        "",
        "Made by `make reproduce-compose` (`python scripts/reproduce.py --suite compose`; "
        "`--scenarios NAME` for one). Every scenario composes energies that the model was never "
        "trained with, at plan time, and is scored in the simulator with the obstacles solid. "
        "*Success*: the goal reached; *clean success*: reached without touching an obstacle "
        "(rates over episodes ± their binomial standard error); "
        "*collision rate*: the fraction of executed steps in contact with an obstacle; *plans "
        "touching*: chosen plans that pass within the point mass's radius of an obstacle; "
        "*score*: D4RL normalized score (mean ± s.e.); *path length*: metres to the first goal "
        "contact, successful episodes; *network evals / plan*: calls of the composed denoiser "
        "per plan (one per level, plus each corrector step's: 1 for ULA, 2 for MALA, 1 + "
        "leapfrog steps for HMC; times the candidates). A call of a classifier-free "
        "composition of k attributes runs the network k + 1 times, a call of overlapping "
        "windows once per window and overlap, and a call of an energy model is a forward and "
        "a backward pass, so compute is equal only within a scenario's comparable rows; "
        "*plan time*: median wall time per plan (batched, first batch's compilation included "
        "in the median's population). *(map-assisted)* after a method's name: its policy "
        "planned toward targets along the shortest free route that a graph search over the "
        "known walls and obstacles found (`eval.route_reach`): the map search chose the "
        "route, not the composed energies, so such a row is an option for users who know "
        "their map and no evidence for composition.",
        "",
    ]
    files = [path.stem for path in scenario_files()]
    for name in sorted(
        record["scenarios"], key=lambda n: files.index(record["scenarios"][n]["file"])
    ):
        scenario = record["scenarios"][name]
        lines.append(markdown_section(scenario, scenario_notes(name)))
        lines.append(
            f"Wall time {scenario['wall_minutes']} min on {scenario['machine']}, git "
            f"{scenario['git_revision']}; command `{scenario['command']}`.\n"
        )
        if scenario.get("show_terms"):
            lines += ["Per-term energies of the chosen plans:", "", term_table(scenario)]
    return "\n".join(lines)


def compose_suite(names: list[str] | None) -> None:
    """Run the selected scenarios (all by default) and rewrite results/composition.md."""
    scenarios = [load_scenario(path) for path in scenario_files()]
    unknown = set(names or ()) - {scenario.name for scenario in scenarios}
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; see configs/compose/")
    json_path = RESULTS / "composition.json"
    record = json.loads(json_path.read_text()) if json_path.is_file() else {"scenarios": {}}
    for scenario in scenarios:
        if names and scenario.name not in names:
            continue
        for spec in [*scenario.runs, *scenario.value_runs]:
            train_scenario_run(spec)
        began, revision = time.perf_counter(), git_revision()  # the code the rows come from
        result = run_scenario(scenario, log=functools.partial(print, flush=True))
        rollouts = result.pop("rollouts")
        task = get_maze_task(result["task"])
        figure = RESULTS / "figures" / f"compose-{scenario.name}.png"
        regions = [
            spec for spec in [*scenario.score.get("constraints", ()),
                              *scenario.score.get("objectives", ())]
            if "center" in spec or "low" in spec
        ]  # fmt: skip
        plot_scenario(figure, task, result, rollouts, regions)
        result |= {
            "file": Path(scenario.source).stem,
            "show_terms": bool(scenario.score),
            "wall_minutes": round((time.perf_counter() - began) / 60, 1),
            "machine": platform.platform(),
            "git_revision": revision,
            "command": f"python scripts/reproduce.py --suite compose --scenarios {scenario.name}",
        }
        record["scenarios"][scenario.name] = result
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        (RESULTS / "composition.md").write_text(composition_markdown(record))
        print(f"wrote {RESULTS / 'composition.md'} ({scenario.name})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=["maze2d", "compose"], default="maze2d")
    parser.add_argument("--scenarios", nargs="+", help="compose: scenario names (default: all)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--tasks", nargs="+", choices=["umaze", "medium", "large"],
                        default=["umaze", "medium", "large"])  # fmt: skip
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--knobs", action="store_true", help="also the U-Maze speed-knob table")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="instead of the models: the untrained and no-model rows of --tasks' jumpy configs",
    )
    parser.add_argument("--run-root", type=Path, default=Path("runs"))
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the suite's .md from its .json"
    )
    args = parser.parse_args()
    if args.suite == "compose":
        if args.render_only:
            record = json.loads((RESULTS / "composition.json").read_text())
            (RESULTS / "composition.md").write_text(composition_markdown(record))
        else:
            compose_suite(args.scenarios)
        return
    json_path = RESULTS / "maze2d.json"
    record = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    if args.baselines:  # the model rows are left as stored
        for task in args.tasks:
            rows = evaluate_baselines(task, args.run_root, args.episodes)
            kept = [row for row in record.get("baselines", ()) if row["task"] != task]
            record |= {"baselines": kept + rows, **where_made()}
            json_path.write_text(json.dumps(record, indent=2) + "\n")
            (RESULTS / "maze2d.md").write_text(markdown(record))
            print(f"wrote {RESULTS / 'maze2d.md'}", flush=True)
        return
    for row in record["rows"]:  # rows from before the hierarchical planner: flat, open loop
        row.setdefault("model", "flat")
        row.setdefault("oracle", oracle_score(row["task"]))
        refresh_training(row)
    if args.render_only:
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        plot_curves(record["rows"], RESULTS / "figures" / "maze2d-score-vs-steps.png")
        (RESULTS / "maze2d.md").write_text(markdown(record))
        return
    order = ["umaze", "medium", "large"]
    for model in args.models:
        for task in args.tasks:
            row = evaluate_task(task, args.budget, model, args.run_root, args.episodes)
            key = (task, args.budget, model)
            record["rows"] = [
                r for r in record["rows"] if (r["task"], r["budget"], r["model"]) != key
            ] + [row]
            record["rows"].sort(
                key=lambda r: (r["budget"], MODELS.index(r["model"]), order.index(r["task"]))
            )
            if args.knobs and task == "umaze" and model == "flat":
                run_dir = Path(row["run_dir"])
                record["knobs"] = {"run_dir": str(run_dir), "episodes": args.episodes,
                                   "rows": speed_knobs(run_dir, args.episodes)}  # fmt: skip
            record |= where_made()
            json_path.write_text(json.dumps(record, indent=2) + "\n")
            plot_curves(record["rows"], RESULTS / "figures" / "maze2d-score-vs-steps.png")
            (RESULTS / "maze2d.md").write_text(markdown(record))
            print(f"wrote {RESULTS / 'maze2d.md'}", flush=True)


if __name__ == "__main__":
    main()
