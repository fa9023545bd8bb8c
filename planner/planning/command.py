"""``planner plan``: one plan from a trained run with the goals and constraints of a config.

Writes ``plan.npz`` (every candidate, the chosen index, per-term energies), ``plan.json`` (the
request, the sampler, per-term energies and whether each hard constraint holds) and ``plan.png``:
for Maze2D the candidates over the maze, checked against its walls and the simulator's speed;
for a locomotion or Gymnasium task, a plan from the simulator's reset observation (seed
``plan.seed``) and the planned observation traces.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from planner.config import Config, config_to_dict
from planner.planning.build import build_planner, plan_config
from planner.planning.maze import (
    PlanRequestError,
    check_point,
    executability,
    executability_text,
    inside_walls,
    route_exists,
)
from planner.planning.planner import Planner, Plans
from planner.planning.run import load_run
from planner.tasks import Task, get_task
from planner.tasks.maze2d import GOAL_RADIUS, Maze2DEnv
from planner.viz.plan import plot_plan, plot_plan_traces

VIOLATION_TOLERANCE = 1e-3  # metres: a hard constraint "holds" within this


def _start_observation(config: Config, task, start: Sequence[float] | None) -> np.ndarray:
    """``[O]``: the given start position at rest, or a draw from the task's start distribution."""
    if start is not None:
        return np.array([*start, 0.0, 0.0], np.float32)
    observation, _ = Maze2DEnv(task).reset(seed=config.plan.seed)
    return observation.astype(np.float32)


def _check_request(planner: Planner, start: np.ndarray, goal: np.ndarray, names: list[str]) -> None:
    """Refuse hard constraints that the fixed start or goal already violates."""
    layout = planner.layout
    rows = np.zeros((2, layout.action_dim + layout.observation_dim), np.float32)
    rows[0, layout.action_dim :] = start
    rows[1, list(layout.position_columns)] = goal
    for term, label in zip(planner.terms, names, strict=True):
        if term.violation is None or term.name.startswith("pass_through"):
            continue
        for row, what, where in ((rows[:1], "start", start[:2]), (rows[1:], "goal", goal)):
            if float(term.violation_of(row)) > VIOLATION_TOLERANCE:
                raise PlanRequestError(
                    f"the {what} {np.asarray(where).tolist()} violates {label} ({term.name}); "
                    f"move it or the constraint"
                )


def plan_task(config: Config) -> Task:
    """The task of ``config``; a :class:`PlanRequestError` when ``data.env`` cannot be run or
    the dataset belongs to no task."""
    try:
        task = get_task(config.data.dataset, config.data.env)
    except ValueError as error:
        raise PlanRequestError(f"data.env: {error}") from None
    if task is None:
        raise PlanRequestError(
            f"{config.data.dataset}: `planner plan` plans for Maze2D, locomotion and the "
            f"Gymnasium environment data.env names (set it when training)"
        )
    return task


def run_plan(
    run_dir: Path,
    config_file: Path | None = None,
    overrides: Sequence[str] = (),
    start: Sequence[float] | None = None,
    goal: Sequence[float] | None = None,
    out_dir: Path | None = None,
    step: int | None = None,
) -> dict[str, Any]:
    """Plan once and write the outputs; returns the summary written to ``plan.json``."""
    run = load_run(run_dir, step)
    config = plan_config(run, config_file, overrides)
    plan = config.plan
    task = plan_task(config)
    out_dir = out_dir or run.run_dir / "plans"
    if task.family != "maze2d":
        return _run_goal_free_plan(run, config, task, start or goal, out_dir)
    start_obs = _start_observation(config, task, start or plan.start)
    goal_xy = np.asarray(goal or plan.goal or task.eval_goal, np.float32)
    check_point(task, start_obs[:2], "start")
    check_point(task, goal_xy, "goal")
    waypoints = [(int(w["step"]), w["position"]) for w in plan.waypoints]
    for index, (_, point) in enumerate(waypoints):
        check_point(task, point, f"plan.waypoints[{index}]")

    planner, terms, labels = build_planner(run, config, task)
    _check_request(planner, start_obs, goal_xy, labels)
    if not route_exists(task, start_obs[:2], goal_xy, terms, run.layout):
        warnings.warn(
            "the obstacles and bounds leave no free route from start to goal; the plan will "
            "violate a constraint (see plan.json)",
            stacklevel=2,
        )

    began = time.perf_counter()
    plans = planner.plan(
        jax.random.key(plan.seed),
        start_obs[None],
        goal_xy[None] if plan.impose_goal else None,
        plan.n_candidates,
        waypoints,
    )
    seconds = time.perf_counter() - began
    summary = _summary(run, config, plans, terms, labels, start_obs, seconds)
    summary |= _maze_summary(run, config, plans, terms, goal_xy, task)
    _write_outputs(out_dir, plans, summary)
    positions = plans.trajectories[0][..., list(run.layout.position_columns)]
    title = _maze_title(task, summary)
    plot_plan(out_dir / "plan.png", task, positions, int(plans.best[0]), terms, title, plans.jump)
    return {**summary, "out_dir": str(out_dir)}


def _run_goal_free_plan(
    run, config: Config, task: Task, position: Sequence[float] | None, out_dir: Path
) -> dict[str, Any]:
    """A locomotion or Gymnasium task's plan: from the simulator's reset observation (seed
    ``plan.seed``), no goal, the energies of ``config.plan``; ``plan.png`` the planned
    observation traces."""
    plan = config.plan
    if position is not None or plan.start is not None or plan.goal is not None or plan.waypoints:
        raise PlanRequestError(
            f"{task.name}: start, goal and waypoints are Maze2D positions; a {task.family} "
            f"plan starts from the simulator's reset observation (plan.seed {plan.seed}) and "
            f"has no goal"
        )
    observation, _ = task.make_env().reset(seed=plan.seed)
    start = np.asarray(observation, np.float32)
    planner, terms, labels = build_planner(run, config, None)
    began = time.perf_counter()
    plans = planner.plan(jax.random.key(plan.seed), start[None], None, plan.n_candidates)
    seconds = time.perf_counter() - began
    summary = _summary(run, config, plans, terms, labels, start, seconds)
    _write_outputs(out_dir, plans, summary)
    title = f"{task.name}, {summary['n_candidates']} candidates; {_held(summary)}"
    observations = plans.trajectories[0][..., run.layout.action_dim :]
    plot_plan_traces(out_dir / "plan.png", observations, int(plans.best[0]), title)
    return {**summary, "out_dir": str(out_dir)}


def _summary(run, config, plans: Plans, terms, labels, start, seconds) -> dict:
    """What every plan reports: the request, the sampler, each term's energy and each hard
    constraint's violation for the chosen candidate, the effective sample size."""
    best = int(plans.best[0])
    chosen = plans.chosen[0]
    hard = [(term, label) for term, label in zip(terms, labels, strict=True) if term.violation]
    constraints = [
        {
            "term": label,
            "type": term.name,
            "violation": float(plans.violations[0, best, index]),
            "holds": bool(plans.violations[0, best, index] <= VIOLATION_TOLERANCE),
        }
        for index, (term, label) in enumerate(hard)
    ]
    return {
        "run": str(run.run_dir),
        "checkpoint_step": run.step,
        "start": start.tolist(),
        "plan": config_to_dict(config)["plan"],
        "horizon": int(chosen.shape[0]),
        "subgoal_every": plans.jump,
        "n_candidates": int(plans.trajectories.shape[1]),
        "best_candidate": best,
        "plan_seconds_including_compile": round(seconds, 3),
        "terms": [
            {
                "term": label,
                "type": term.name,
                "weight": float(term.weight),
                "energy": float(plans.energies[0, best, k]),
            }
            for k, (term, label) in enumerate(zip(terms, labels, strict=True))
        ],
        "total_energy": float(plans.total[0, best]),
        "constraints": constraints,
        "all_constraints_hold": all(c["holds"] for c in constraints),
        "mean_acceptance": float(plans.acceptance[0].mean()),
        "effective_sample_size": float(plans.ess[0]) * int(plans.trajectories.shape[1]),
        "smc_resamples": int(plans.resamples[0]),
    }


def _maze_summary(run, config: Config, plans: Plans, terms, goal: np.ndarray, task) -> dict:
    """A Maze2D plan's goal and its checks against the walls and the simulator."""
    positions = plans.chosen[0][:, list(run.layout.position_columns)]
    goal_distance = float(np.linalg.norm(positions[-1] - goal))
    return {
        "goal": goal.tolist(),
        "steps_inside_walls": int(inside_walls(task, positions).sum()),
        "final_distance_to_goal": goal_distance,
        "reaches_goal": goal_distance <= GOAL_RADIUS,
        "execution": executability(
            task, positions, goal, terms, run.layout, pursued=config.eval.lookahead is not None
        ),
    }


def _held(summary: dict) -> str:
    return "all constraints hold" if summary["all_constraints_hold"] else "a constraint is VIOLATED"


def _maze_title(task, summary: dict) -> str:
    execution = summary["execution"]
    return (
        f"{task.name}, {summary['n_candidates']} candidates; {_held(summary)}; "
        f"end {summary['final_distance_to_goal']:.2f} m from goal; "
        + ("executable" if execution["executable"] else executability_text(execution))
    )


def _write_outputs(out_dir: Path, plans: Plans, summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        out_dir / "plan.npz",
        trajectories=plans.trajectories[0],
        best=plans.best[0],
        energies=plans.energies[0],
        total=plans.total[0],
        violations=plans.violations[0],
        term_names=np.array(plans.term_names),
    )
    (out_dir / "plan.json").write_text(json.dumps(summary, indent=2) + "\n")
