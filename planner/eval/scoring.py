"""Score a trained run in the simulator under the D4RL protocol and write what it measured
(``planner eval`` and the reproduction scripts call :func:`run_eval`).

Writes ``scores.json`` (settings, scores under both reference tables where they exist,
per-episode returns), ``rollouts.npz`` and ``rollouts.png`` into ``RUN/eval/<mode>-seed{S}`` by
default: Maze2D's plans and paths (mode ``single`` or ``multi2d``), OGBench's success per
evaluation task with its episodes' paths (mode ``ogbench``), the return curves of locomotion or
of the Gymnasium environment ``data.env`` names (mode ``locomotion``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from planner.config import Config, config_to_dict
from planner.data.locomotion import expert_returns
from planner.data.maze2d import reference_scores
from planner.data.sources import generated_path, reference_path
from planner.eval import ogbench
from planner.eval.evaluate import evaluate
from planner.eval.locomotion import (
    evaluate_locomotion,
    executed_constraints,
    locomotion_summary,
    random_policy_returns,
)
from planner.eval.rollouts import Rollouts
from planner.eval.scores import score_summary
from planner.paths import data_dir
from planner.planning.build import plan_config, related_run_dir
from planner.planning.maze import PlanRequestError
from planner.planning.run import TrainedRun, latest_step, load_run
from planner.provenance import git_revision
from planner.tasks import Task, get_task
from planner.tasks.locomotion import LOCOMOTION_TASKS, LocomotionTask
from planner.tasks.maze2d import MazeTask
from planner.tasks.ogbench import OGBenchMazeTask
from planner.viz.ogbench import plot_maze_episodes
from planner.viz.rollouts import plot_return_curves, plot_rollouts

FIGURE_EPISODES = 8


def simulator_references(task: MazeTask) -> dict[str, Any]:
    """This simulator's reference returns (random policy, reused controller), stored next to the
    default regenerated dataset; computed (100 episodes each, seed 0) and stored if missing."""
    path = reference_path(generated_path(task, task.dataset_steps, 0, None))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(reference_scores(task), indent=2))
    return json.loads(path.read_text())


def locomotion_references(task: LocomotionTask) -> dict[str, Any]:
    """This simulator's reference returns, stored in the data directory as
    ``<body>.reference.json`` (another environment: ``<env id>.reference.json``): ``ref_min``
    the random policy's mean return, ``ref_max`` the seed-0 expert behaviour policy's (sampled
    actions), 100 episodes each (seed 0). Each is computed once, when first asked for;
    ``ref_max`` stays null until an expert policy has been trained there
    (``planner data generate <body>-expert-v2``)."""
    stem = task.name if LOCOMOTION_TASKS.get(task.name) == task else task.file_stem
    path = data_dir() / f"{stem}.reference.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    record = dict(stored)
    if "ref_min" not in record:
        returns = random_policy_returns(task)
        record = {"ref_min": float(returns.mean()), "ref_max": None, "episodes": len(returns)}
    if record["ref_max"] is None and (expert := expert_returns(task, data_dir())) is not None:
        returns, metadata = expert
        record["ref_max"] = float(returns.mean())
        record["expert"] = {
            "episodes": len(returns),
            "return_std": float(returns.std()),
            "train_steps": metadata["steps"],
            "last_eval_return": metadata["history"][-1][1] if metadata["history"] else None,
        }
    if record != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
    return record


def eval_task(config: Config) -> Task:
    """The task ``config`` is evaluated in; a :class:`PlanRequestError` when ``data.env`` names an
    environment planner cannot run, or when the dataset belongs to no task and ``data.env`` is
    unset."""
    try:
        task = get_task(config.data.dataset, config.data.env)
    except ValueError as error:
        raise PlanRequestError(f"data.env: {error}") from None
    if task is None:
        raise PlanRequestError(
            f"{config.data.dataset}: `planner eval` runs Maze2D and locomotion tasks, or the "
            f"Gymnasium environment data.env names (set it when training)"
        )
    return task


def default_out_dir(run: TrainedRun, config: Config) -> Path:
    task = eval_task(config)
    if task.family == "ogbench":
        mode = "ogbench"
    elif task.family != "maze2d":
        mode = "locomotion"
    else:
        mode = "multi2d" if config.eval.multi_task else "single"
    return run.run_dir / "eval" / f"{mode}-seed{config.eval.seed}"


def run_eval(
    run_dir: Path,
    config_file: Path | None = None,
    overrides: Sequence[str] = (),
    step: int | None = None,
    out_dir: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate and write the outputs; returns the summary written to ``scores.json``."""
    run = load_run(run_dir, step)
    config = plan_config(run, config_file, overrides, ("plan", "eval"))
    out_dir = out_dir or default_out_dir(run, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = eval_task(config)
    if task.family == "maze2d":
        summary = _maze_eval(run, config, task, out_dir, show_progress)
    elif task.family == "ogbench":
        summary = _ogbench_eval(run, config, task, out_dir, show_progress)
    else:
        summary = _locomotion_eval(run, config, task, out_dir, show_progress)
    (out_dir / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "out_dir": str(out_dir)}


def _provenance(run: TrainedRun, config: Config, seconds: float) -> dict[str, Any]:
    """What an evaluation ran: the run and its checkpoint step, the steps of the value runs its
    plans were ranked or guided by and of the inverse-dynamics run it acted with (diffusion
    runs; None: none), the plan and eval sections, where and when."""
    sections = config_to_dict(config)
    planning = run.kind == "diffusion"
    value_objectives = config.plan.objectives if planning else []
    inverse_dynamics = config.plan.inverse_dynamics if planning else None
    return {
        "run": str(run.run_dir),
        "kind": run.kind,
        "checkpoint_step": run.step,
        "value_steps": {
            spec["run"]: latest_step(related_run_dir(spec["run"], run.run_dir))
            for spec in value_objectives
            if spec.get("type") == "value"
        },
        "inverse_dynamics_steps": None
        if inverse_dynamics is None
        else latest_step(related_run_dir(inverse_dynamics, run.run_dir)),
        "eval": sections["eval"],
        "plan": sections["plan"],
        "seconds": round(seconds, 1),
        "device": jax.devices()[0].platform,
        "machine": platform.platform(),
        "git_revision": git_revision(),
    }


def _locomotion_eval(
    run: TrainedRun, config: Config, task: LocomotionTask, out_dir: Path, show_progress: bool
) -> dict[str, Any]:
    references = locomotion_references(task)
    constraints = config.plan.constraints
    began = time.perf_counter()
    rollouts = evaluate_locomotion(run, config, task, show_progress)
    seconds = time.perf_counter() - began
    np.savez_compressed(out_dir / "rollouts.npz", **dataclasses.asdict(rollouts))
    plot_return_curves(out_dir / "rollouts.png", task.name, rollouts.rewards, rollouts.lengths)
    return {
        "task": task.name,
        "env": task.gym_id,
        "dataset": config.data.dataset,
        **_provenance(run, config, seconds),
        "scores": locomotion_summary(rollouts, task, references),
        "constraints": executed_constraints(run, constraints, rollouts) if constraints else [],
        "returns": rollouts.returns.tolist(),
        "lengths": rollouts.lengths.tolist(),
    }


def _maze_eval(
    run: TrainedRun, config: Config, task: MazeTask, out_dir: Path, show_progress: bool
) -> dict[str, Any]:
    references = simulator_references(task)
    began = time.perf_counter()
    rollouts = evaluate(run, config, task, show_progress)
    seconds = time.perf_counter() - began
    np.savez_compressed(out_dir / "rollouts.npz", **dataclasses.asdict(rollouts))
    shown = slice(0, FIGURE_EPISODES)
    position = list(run.layout.position_columns)
    plot_rollouts(
        out_dir / "rollouts.png",
        task,
        rollouts.first_plans[shown][..., position],
        rollouts.observations[shown][..., list(run.layout.position)],
        rollouts.goals[shown],
        rollouts.returns[shown],
    )
    return {
        "task": task.name,
        "multi_task": config.eval.multi_task,
        **_provenance(run, config, seconds),
        "scores": score_summary(rollouts, task, references),
        "returns": rollouts.returns.tolist(),
        "feasible": rollouts.feasible.tolist(),
    }


def _ogbench_eval(
    run: TrainedRun, config: Config, task: OGBenchMazeTask, out_dir: Path, show_progress: bool
) -> dict[str, Any]:
    settings = config.eval
    policy = ogbench.planner_policy(run, config)
    began = time.perf_counter()
    rollouts, task_ids = ogbench.evaluate(
        policy, task, settings.episodes, settings.seed, settings.batch_size, show_progress
    )
    seconds = time.perf_counter() - began
    np.savez_compressed(out_dir / "rollouts.npz", task_ids=task_ids, **dataclasses.asdict(rollouts))
    write_episode_figure(out_dir / "rollouts.png", task, rollouts, task_ids, run)
    return {
        "task": task.name,
        "env": task.env_id,
        **_provenance(run, config, seconds),
        "scores": ogbench.success_summary(rollouts, task_ids),
        "first_plan_steps_in_walls": ogbench.steps_in_walls_summary(
            task, rollouts.first_plans[..., list(run.layout.position_columns)], task_ids
        ),
        "decisions_per_second": round(float(rollouts.lengths.sum()) / seconds, 1),
        "success": rollouts.success.tolist(),
        "lengths": rollouts.lengths.tolist(),
    }


def write_episode_figure(
    path: Path,
    task: OGBenchMazeTask,
    rollouts: Rollouts,
    task_ids: np.ndarray,
    run: TrainedRun,
) -> Path:
    """The first episode of each evaluation task: its first plan and its path."""
    shown = np.array([np.flatnonzero(task_ids == k)[0] for k in np.unique(task_ids)])
    plans = rollouts.first_plans[shown][..., list(run.layout.position_columns)]
    titles = [
        f"task {task_ids[i]}: {'reached' if rollouts.success[i] else 'missed'} "
        f"({rollouts.lengths[i]} steps)"
        for i in shown
    ]
    return plot_maze_episodes(
        path, task, plans, rollouts.observations[shown], rollouts.goals[shown], titles
    )
