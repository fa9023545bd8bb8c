"""OGBench's evaluation protocol for the pointmaze tasks, with any policy.

OGBench (``impls/main.py``, ``impls/utils/evaluation.py``) runs each of a maze's 5 evaluation
tasks for 20 episodes (``--eval_episodes``) and reports the mean of ``info["success"]`` at the
last step, which, with the episode ending at the goal, is whether the goal was reached within
the 1,000 steps. Here ``eval.episodes`` episodes are spread evenly over the tasks (100: 20 per
task), episode ``i`` reset with its own seed (:func:`planner.eval.rollouts.episode_seed`).

The planner's policy (:func:`planner_policy`) composes the run's model as ``plan`` says with no
knowledge of the walls (no wall term, no map search, no oracle): plans from the position to the
goal, or with ``eval.subgoal_value`` to the subgoal a learned temporal distance picks, pursued
along their path by the point mass's displacement controller, replanned under the ``eval``
section's rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.config import Config, ConfigError
from planner.control.policies import (
    Policy,
    ReplanRule,
    goal_feedback_policy,
    planner_plan_fn,
    receding_horizon_policy,
    straight_plan_fn,
    toward_targets,
)
from planner.control.subgoals import graph_subgoals, value_subgoals
from planner.eval.rollouts import Rollouts, run_episodes
from planner.gcvalue import load_goal_value
from planner.planning.build import build_planner, related_run_dir
from planner.planning.run import TrainedRun
from planner.tasks.ogbench import N_TASKS, STEP_SIZE, OGBenchMazeTask, inside_walls


def planner_policy(run: TrainedRun, config: Config) -> Policy:
    """The receding-horizon planner of ``config`` (``plan`` and ``eval`` sections) for an
    OGBench maze: no walls (``plan.walls`` must be ``off``), path pursuit required. With
    ``eval.policy: straight`` the plans are straight lines, no model: what the subgoals alone
    do."""
    settings, plan = config.eval, config.plan
    if plan.walls != "off":
        raise ConfigError("OGBench mazes' walls are not known to the planner: set plan.walls: off")
    if settings.lookahead is None:
        raise ConfigError("the point mass pursues its plans: set eval.lookahead (maze units)")
    if settings.policy == "route":
        raise ConfigError("eval.policy route follows a Maze2D map; OGBench's is not known here")
    if settings.policy == "straight":
        plan_fn = straight_plan_fn(run.layout, plan.horizon or config.data.horizon)
    else:
        planner = build_planner(run, config, None)[0]
        warm_level = settings.warm_start_level if settings.policy == "mpc" else None
        plan_fn = planner_plan_fn(
            {0: planner}, warm_level, plan.seed, plan.n_candidates, plan.impose_goal,
            plan.average_best,
        )  # fmt: skip
    rule = ReplanRule()
    if settings.policy in ("mpc", "straight"):
        rule = ReplanRule(
            every=settings.replan_every,
            deviation=settings.replan_deviation,
            pin_arrival=settings.pin_arrival,
        )
    if settings.subgoal_value is not None:
        value = load_goal_value(related_run_dir(settings.subgoal_value, run.run_dir))
        position, reach, edge = run.layout.position, settings.subgoal_reach, settings.subgoal_edge
        subgoals = (
            value_subgoals(value, reach, position)
            if edge is None
            else graph_subgoals(value, edge, reach, position)
        )
        plan_fn = toward_targets(plan_fn, subgoals)
    return receding_horizon_policy(
        plan_fn, run.layout, rule, lookahead=settings.lookahead, step_size=STEP_SIZE
    )


def gcbc_policy(act: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Policy:
    """A goal-conditioned policy that never plans: ``act(observations [B, 2], goals [B, 2])``
    gives the actions, clipped to the action range as OGBench's evaluation clips them."""
    return goal_feedback_policy(lambda obs, goals: np.clip(act(obs, goals), -1.0, 1.0))


def task_of(episode: int, episodes: int) -> int:
    """The evaluation task (1 to 5) of ``episode`` among ``episodes`` spread evenly over them."""
    return episode // (episodes // N_TASKS) + 1


def evaluate(
    policy: Policy,
    task: OGBenchMazeTask,
    episodes: int,
    seed: int,
    batch_size: int,
    show_progress: bool = True,
) -> tuple[Rollouts, np.ndarray]:
    """``(rollouts, task_ids [N])`` of ``episodes`` episodes (a multiple of 5) of ``task``'s
    evaluation tasks under ``policy``, ``batch_size`` at a time."""
    if episodes % N_TASKS:
        raise ConfigError(f"eval.episodes must be a multiple of {N_TASKS} (one share per task)")
    task_ids = np.array([task_of(i, episodes) for i in range(episodes)])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    parts: list[Rollouts] = []
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(f"eval {task.name}", total=episodes)
        for first in range(0, episodes, batch_size):
            batch = range(first, min(first + batch_size, episodes))
            envs = [task.make_env(int(task_ids[i])) for i in batch]
            parts.append(run_episodes(envs, policy, batch, seed, task.max_episode_steps))
            success = np.concatenate([part.success for part in parts]).mean()
            progress.update(
                bar, advance=len(batch), description=f"eval {task.name}: success {success:.0%}"
            )
    return Rollouts.concatenate(parts), task_ids


def success_summary(rollouts: Rollouts, task_ids: np.ndarray) -> dict[str, Any]:
    """Success rate (percent) ± standard error over episodes, overall and per task, and the
    median steps to the goal of the episodes that reached it."""

    def rate(success: np.ndarray) -> dict[str, float]:
        mean = float(success.mean())
        error = float(success.std(ddof=1) / np.sqrt(len(success))) if len(success) > 1 else 0.0
        return {"success": round(100 * mean, 1), "stderr": round(100 * error, 1)}

    success = rollouts.success
    reached = rollouts.time_to_goal[success]
    return {
        **rate(success),
        "episodes": len(success),
        "per_task": per_task(rate, success, task_ids),
        "median_steps_to_goal": float(np.median(reached)) if len(reached) else None,
    }


def steps_in_walls_summary(
    task: OGBenchMazeTask, plans: np.ndarray, task_ids: np.ndarray
) -> dict[str, Any]:
    """Percent of the steps of ``plans`` [N, S, 2] (positions of each episode's first plan) that
    lie in a wall cell, over all episodes and per task: how well the model knows the maze
    (measured with the walls, which the planner never sees; a plan cutting a corner counts)."""
    in_walls = inside_walls(task.maze, plans).mean(axis=-1)

    def percent(shares: np.ndarray) -> float:
        return round(100 * float(shares.mean()), 1)

    return {"percent": percent(in_walls), "per_task": per_task(percent, in_walls, task_ids)}


def per_task(
    reduce: Callable[[np.ndarray], Any], values: np.ndarray, task_ids: np.ndarray
) -> dict[str, Any]:
    """``{"task<k>": reduce(values[task_ids == k])}`` for each task ``k`` of ``task_ids`` [N];
    ``values`` [N] one per episode."""
    return {f"task{k}": reduce(values[task_ids == k]) for k in np.unique(task_ids).tolist()}
