"""Evaluation as a library: the policy a config asks for, and batches of episodes under it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.config import Config, EvalConfig
from planner.control.policies import Policy, ReplanRule, planner_plan_fn, receding_horizon_policy
from planner.envs.maze2d import GOAL_RADIUS, MazeTask, Obstacle, normalized_score
from planner.eval.rollouts import Rollouts, run_episodes
from planner.planning.build import build_planner
from planner.planning.maze import PlanRequestError, route_exists
from planner.planning.planner import appearance_steps
from planner.planning.run import TrainedRun


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
    return receding_horizon_policy(plan_fn, run.layout, rule, routes, settings.lookahead)


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
