"""``planner eval``: score a trained run in the simulator under the D4RL Maze2D protocol.

Writes ``scores.json`` (settings, scores under both reference tables, per-episode returns),
``rollouts.npz`` and ``rollouts.png`` into ``RUN/eval/{single,multi2d}-seed{S}`` by default.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.config import Config, EvalConfig, config_to_dict
from planner.control.policies import Policy, ReplanRule, planner_plan_fn, receding_horizon_policy
from planner.data.maze2d import reference_scores
from planner.data.sources import generated_path, reference_path
from planner.envs.maze2d import (
    GOAL_RADIUS,
    MazeTask,
    Obstacle,
    find_maze_task,
    normalized_score,
)
from planner.eval.rollouts import Rollouts, run_episodes
from planner.eval.scores import score_summary
from planner.planning.command import build_planner, plan_config
from planner.planning.maze import PlanRequestError, route_exists
from planner.planning.planner import appearance_steps
from planner.planning.run import TrainedRun, load_run
from planner.provenance import git_revision
from planner.viz.rollouts import plot_rollouts

FIGURE_EPISODES = 8


def simulator_references(task: MazeTask) -> dict[str, Any]:
    """This simulator's reference returns (random policy, reused controller), stored next to the
    default regenerated dataset; computed (100 episodes each, seed 0) and stored if missing."""
    path = reference_path(generated_path(task, task.dataset_steps, 0, None))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(reference_scores(task), indent=2))
    return json.loads(path.read_text())


def replan_rule(settings: EvalConfig, at_steps: tuple[int, ...] = ()) -> ReplanRule:
    """The :class:`ReplanRule` of an ``eval`` section (none for ``open_loop``); MPC also replans
    at ``at_steps``, where obstacles appear."""
    if settings.policy == "open_loop":
        return ReplanRule()
    return ReplanRule(
        every=settings.replan_every,
        deviation=settings.replan_deviation,
        at_steps=at_steps,
        pin_arrival=settings.pin_arrival,
        latch_radius=GOAL_RADIUS if settings.latch else None,
    )


def make_policy(run: TrainedRun, config: Config, task: MazeTask) -> Policy:
    """The policy of ``config.eval`` over the planners of ``config.plan``: one for step 0 and one
    from each step at which a constraint appears (``appears_at``), which MPC replans at."""
    settings, plan = config.eval, config.plan
    warm_level = settings.warm_start_level if settings.policy == "mpc" else None
    if warm_level is not None and warm_level >= run.schedule.n_steps:
        raise PlanRequestError(
            f"eval.warm_start_level must be below the model's {run.schedule.n_steps} levels"
        )
    planners = {0: build_planner(run, config, task)[0]}  # checks the constraints
    appearances = appearance_steps(plan.constraints)
    planners |= {step: build_planner(run, config, task, step)[0] for step in appearances}
    plan_fn = planner_plan_fn(planners, warm_level, plan.seed, plan.n_candidates, plan.impose_goal)
    position = list(run.layout.position)

    def routes(observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return np.array([
            route_exists(task, start, goal, planners[0].terms, run.layout)
            for start, goal in zip(observations[:, position], goals, strict=True)
        ])  # fmt: skip

    rule = replan_rule(settings, appearances)
    return receding_horizon_policy(plan_fn, run.layout, rule, routes)


def evaluate(
    run: TrainedRun,
    config: Config,
    task: MazeTask,
    show_progress: bool = True,
    obstacles: Sequence[Obstacle] = (),
    start: Sequence[float] | None = None,
) -> Rollouts:
    """All ``config.eval.episodes`` episodes, ``config.eval.batch_size`` at a time, in mazes with
    the added ``obstacles`` and, if given, starts around ``start`` (see :class:`Maze2DEnv`)."""
    settings = config.eval
    policy = make_policy(run, config, task)
    mode = "Multi2D" if settings.multi_task else "single-task"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    parts: list[Rollouts] = []
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(f"eval {task.name} {mode}", total=settings.episodes)
        for first in range(0, settings.episodes, settings.batch_size):
            episodes = range(first, min(first + settings.batch_size, settings.episodes))
            rollouts = run_episodes(
                task, policy, episodes, settings.seed, settings.multi_task, obstacles, start
            )
            parts.append(rollouts)
            returns = np.concatenate([part.returns for part in parts])
            score = normalized_score(returns.mean(), task.d4rl_ref_min, task.d4rl_ref_max)
            progress.update(
                bar,
                advance=len(episodes),
                description=f"eval {task.name} {mode}: score {score:.1f}",
            )
    return Rollouts.concatenate(parts)


def default_out_dir(run: TrainedRun, config: Config) -> Path:
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
    task = find_maze_task(config.data.dataset)
    if task is None:
        raise PlanRequestError(f"{config.data.dataset}: `planner eval` runs Maze2D tasks only")
    references = simulator_references(task)
    began = time.perf_counter()
    rollouts = evaluate(run, config, task, show_progress)
    seconds = time.perf_counter() - began
    sections = config_to_dict(config)
    summary = {
        "task": task.name,
        "multi_task": config.eval.multi_task,
        "run": str(run.run_dir),
        "checkpoint_step": run.step,
        "eval": sections["eval"],
        "plan": sections["plan"],
        "scores": score_summary(rollouts, task, references),
        "returns": rollouts.returns.tolist(),
        "feasible": rollouts.feasible.tolist(),
        "seconds": round(seconds, 1),
        "device": jax.devices()[0].platform,
        "machine": platform.platform(),
        "git_revision": git_revision(),
    }
    out_dir = out_dir or default_out_dir(run, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    np.savez_compressed(
        out_dir / "rollouts.npz",
        episodes=rollouts.episodes,
        rewards=rollouts.rewards,
        observations=rollouts.observations,
        goals=rollouts.goals,
        first_plans=rollouts.first_plans,
        replans=rollouts.replans,
        feasible=rollouts.feasible,
    )
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
    return {**summary, "out_dir": str(out_dir)}
