"""``planner plan``: one plan from a trained run with the goals and constraints of a config.

Writes ``plan.npz`` (every candidate, the chosen index, per-term energies), ``plan.json`` (the
request, the sampler, per-term energies and whether each hard constraint holds) and ``plan.png``.
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
import yaml

from planner.config import Config, ConfigError, apply_override, config_from_dict, config_to_dict
from planner.diffusion.denoisers import (
    Denoiser,
    composed_conditions,
    overlapping_windows,
    window_starts,
)
from planner.energies.base import Term
from planner.envs.maze2d import GOAL_RADIUS, Maze2DEnv, MazeTask, find_maze_task
from planner.planning.maze import (
    PlanRequestError,
    check_point,
    executability,
    executability_text,
    inside_walls,
    route_exists,
    walls_term,
)
from planner.planning.planner import Planner, Plans, sampler_spec, terms_from_config
from planner.planning.run import TrainedRun, load_run
from planner.viz.plan import plot_plan

VIOLATION_TOLERANCE = 1e-3  # metres: a hard constraint "holds" within this


def plan_config(
    run: TrainedRun,
    config_file: Path | None,
    overrides: Sequence[str],
    sections_allowed: Sequence[str] = ("plan",),
) -> Config:
    """The run's config with its ``plan`` section replaced by ``config_file``'s (if given) and
    overrides of the ``sections_allowed`` applied."""
    sections = config_to_dict(run.config)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: config file not found")
        raw = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(raw, dict) or not isinstance(raw.get("plan", {}), dict):
            raise ConfigError(f"{config_file}: needs a `plan:` mapping")
        sections["plan"] = raw.get("plan") or {}
    for override in overrides:
        if override.split(".", 1)[0] not in sections_allowed:
            allowed = ", ".join(f"{name}.*" for name in sections_allowed)
            raise ConfigError(f"--set {override}: only {allowed} settings can change here")
        apply_override(sections, override)
    return config_from_dict(sections, str(config_file or run.run_dir / "config.yaml"))


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


def plan_denoiser(run: TrainedRun, config: Config, horizon: int) -> Denoiser:
    """The run's model as ``config.plan`` composes it: attribute conditions (``require``,
    ``exclude``) by classifier-free guidance, then overlapping windows (``window_stride``) for
    plans longer than the training horizon. ``ValueError`` for settings the run cannot take."""
    plan = config.plan
    denoiser = run.denoiser_in(plan.precision)
    if plan.require or plan.exclude:
        denoiser = composed_conditions(
            run.attribute_denoiser(None, plan.precision),
            [run.attribute_denoiser(name, plan.precision) for name in plan.require],
            [run.attribute_denoiser(name, plan.precision) for name in plan.exclude],
            plan.attribute_guidance,
        )
    if plan.window_stride is not None:
        window, stride = config.data.horizon, config.model.temporal_stride
        window_starts(horizon, window, plan.window_stride)
        if (window - plan.window_stride) % stride:
            raise ValueError(
                f"plan.window_stride must leave overlaps (H - stride = "
                f"{window - plan.window_stride}) that are a multiple of {stride}"
            )
        if config.diffusion.condition_start or config.diffusion.condition_goal:
            raise ValueError(
                "plan.window_stride composes windows of a model trained without imposed "
                "observations (diffusion.condition_start: false, condition_goal: false); this "
                "run saw every window's first (and last) observation clean in training, which "
                "the windows inside a longer plan cannot give it"
            )
        denoiser = overlapping_windows(denoiser, window, plan.window_stride)
    return denoiser


def build_planner(
    run: TrainedRun, config: Config, task: MazeTask, step: int = 0
) -> tuple[Planner, list[Term], list[str]]:
    """``(planner, terms, labels)`` for ``config.plan`` on ``run`` at episode step ``step``: the
    constraints in force then (``appears_at``) and the objectives, plus the maze walls (unless
    ``plan.walls: off``); ``labels`` name each term's config entry."""
    plan = config.plan
    value_runs = {
        spec["run"]: load_run(spec["run"])
        for spec in plan.objectives
        if spec.get("type") == "value"
    }
    try:
        terms = terms_from_config(plan, run.layout, value_runs, step)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if plan.walls != "off":
        terms.append(walls_term(task, run.layout, guide=plan.walls == "guide"))
    horizon = plan.horizon or config.data.horizon
    stride = config.model.temporal_stride
    if horizon % stride:
        raise ConfigError(f"plan.horizon must be a multiple of {stride}; got {horizon}")
    spec = sampler_spec(plan, config.diffusion.clip_denoised)
    try:
        denoiser = plan_denoiser(run, config, horizon)
        planner = Planner(
            denoiser, run.schedule, run.normalizer, run.layout, horizon, spec, terms, plan.select
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    labels = [
        f"plan.constraints[{i}]"
        for i, spec in enumerate(plan.constraints)
        if spec.get("appears_at", 0) <= step
    ]
    labels += [f"plan.objectives[{i}]" for i in range(len(plan.objectives))]
    labels += ["plan.walls"] * (plan.walls != "off")
    return planner, terms, labels


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
    task = find_maze_task(config.data.dataset)
    if task is None:
        raise PlanRequestError("`planner plan` draws and checks Maze2D plans; use the Python API")
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
    out_dir = out_dir or run.run_dir / "plans"
    summary = _summary(run, config, plans, terms, labels, start_obs, goal_xy, seconds, task)
    _write_outputs(out_dir, plans, summary, task, terms, run.layout.position_columns)
    return {**summary, "out_dir": str(out_dir)}


def _summary(run, config, plans: Plans, terms, labels, start, goal, seconds, task) -> dict:
    best = int(plans.best[0])
    chosen = plans.chosen[0]
    positions = chosen[:, list(run.layout.position_columns)]
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
    goal_distance = float(np.linalg.norm(positions[-1] - goal))
    return {
        "run": str(run.run_dir),
        "checkpoint_step": run.step,
        "start": start.tolist(),
        "goal": goal.tolist(),
        "plan": config_to_dict(config)["plan"],
        "horizon": int(chosen.shape[0]),
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
        "steps_inside_walls": int(inside_walls(task, positions).sum()),
        "final_distance_to_goal": goal_distance,
        "reaches_goal": goal_distance <= GOAL_RADIUS,
        "execution": executability(task, positions, goal, terms, run.layout),
        "mean_acceptance": float(plans.acceptance[0].mean()),
    }


def _write_outputs(out_dir: Path, plans: Plans, summary: dict, task, terms, columns) -> None:
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
    held = "all constraints hold" if summary["all_constraints_hold"] else "a constraint is VIOLATED"
    execution = summary["execution"]
    title = (
        f"{task.name}, {summary['n_candidates']} candidates; {held}; "
        f"end {summary['final_distance_to_goal']:.2f} m from goal; "
        + ("executable" if execution["executable"] else executability_text(execution))
    )
    positions = plans.trajectories[0][..., list(columns)]
    plot_plan(out_dir / "plan.png", task, positions, int(plans.best[0]), terms, title)
