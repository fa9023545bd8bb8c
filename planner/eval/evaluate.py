"""Evaluation as a library: the policy a config asks for, and batches of episodes under it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.config import Config, ConfigError, EvalConfig
from planner.control.policies import (
    FeasibleFn,
    PlanFn,
    Policy,
    ReplanRule,
    TargetFn,
    earliest_arrival,
    planner_plan_fn,
    receding_horizon_policy,
    stage_start,
    toward_targets,
)
from planner.energies.base import Term
from planner.energies.terms import Layout
from planner.eval.rollouts import Rollouts, run_episodes
from planner.planning.build import build_planner
from planner.planning.maze import (
    PlanRequestError,
    Routes,
    route_exists,
    routes_to,
    within_limits,
)
from planner.planning.planner import Planner, appearance_steps
from planner.planning.run import TrainedRun
from planner.tasks.maze2d import (
    GOAL_RADIUS,
    POINT_RADIUS,
    STEP_SECONDS,
    MazeTask,
    Obstacle,
)


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


def map_assisted(settings: EvalConfig) -> bool:
    """Whether the policy of an ``eval`` section lets a search over the known map choose the
    route (``route_reach``'s targets, the ``route`` policy) instead of the model."""
    return settings.route_reach is not None or settings.policy == "route"


def make_policy(run: TrainedRun, config: Config, task: MazeTask) -> Policy:
    """The policy of ``config.eval`` over the planners of ``config.plan``: one for step 0 and one
    from each step at which a constraint appears (``appears_at``), which MPC replans at. With
    ``eval.policy: route`` the planners only supply the walls and obstacles that
    :func:`route_plan_fn` plans around; the model is never called."""
    settings, plan = config.eval, config.plan
    warm_level = settings.warm_start_level if settings.policy == "mpc" else None
    if warm_level is not None and warm_level >= run.schedule.n_steps:
        raise PlanRequestError(
            f"eval.warm_start_level must be below the model's {run.schedule.n_steps} levels"
        )
    if settings.route_reach is not None and settings.policy != "mpc":
        raise ConfigError(
            "eval.route_reach moves the target on at each replan: use eval.policy: mpc"
        )
    if settings.route_reach is not None and settings.arrival_search:
        raise ConfigError(
            "eval.arrival_search would bring plans early to route_reach's intermediate targets "
            "and wait there: use one of them"
        )
    if settings.arrival_search and not plan.impose_goal:
        raise ConfigError("eval.arrival_search moves the goal's arrival: it needs plan.impose_goal")
    planners = {0: build_planner(run, config, task)[0]}  # checks the constraints
    appearances = appearance_steps(plan.constraints)
    planners |= {step: build_planner(run, config, task, step)[0] for step in appearances}
    position = list(run.layout.position)

    def routes(observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return np.array([
            route_exists(task, start, goal, planners[0].terms, run.layout)
            for start, goal in zip(observations[:, position], goals, strict=True)
        ])  # fmt: skip

    terms = {step: planner.terms for step, planner in planners.items()}
    if settings.policy == "route":
        plan_fn = route_plan_fn(task, terms, run.layout, settings.route_speed)
    else:
        plan_fn = planner_plan_fn(
            planners, warm_level, plan.seed, plan.n_candidates, plan.impose_goal,
            plan.average_best,
        )  # fmt: skip
        if settings.arrival_search:
            steps = planners[0].steps - 1
            arrivals = [
                round(steps * k / settings.arrival_search)
                for k in range(1, settings.arrival_search)
            ]
            plan_fn = earliest_arrival(plan_fn, arrivals, followable(task, planners, run.layout))
        if settings.route_reach is not None:
            targets = route_targets(task, terms, run.layout, settings.route_reach)
            plan_fn = toward_targets(plan_fn, targets)
    rule = replan_rule(settings, appearances)
    return receding_horizon_policy(plan_fn, run.layout, rule, routes, settings.lookahead)


def followable(task: MazeTask, planners: Mapping[int, Planner], layout: Layout) -> FeasibleFn:
    """A :data:`FeasibleFn`: plans whose paths the point mass can follow (:func:`within_limits`)
    around the walls and the obstacles in force at the step."""
    columns = list(layout.position_columns)

    def feasible(plans: np.ndarray, step: int) -> np.ndarray:
        terms = planners[stage_start(planners, step)].terms
        return within_limits(task, plans[..., columns], terms, layout)

    return feasible


# (goal [P], episode step) -> the Routes to that goal around what is known at that step
RoutesFn = Callable[[np.ndarray, int], Routes]


def stage_routes(task: MazeTask, terms: Mapping[int, Sequence[Term]], layout: Layout) -> RoutesFn:
    """A :data:`RoutesFn` around the walls and the obstacle and bounds ``terms`` in force at
    the step (``terms[s]`` from step ``s``; key 0 required), each computed once per goal and
    stage (:func:`routes_to`)."""
    computed: dict[tuple, Routes] = {}

    def routes(goal: np.ndarray, step: int) -> Routes:
        stage = stage_start(terms, step)
        key = (stage, *np.asarray(goal).tolist())
        if key not in computed:
            computed[key] = routes_to(task, goal, terms[stage], layout)
        return computed[key]

    return routes


def route_targets(
    task: MazeTask, terms: Mapping[int, Sequence[Term]], layout: Layout, reach: float
) -> TargetFn:
    """Targets ``reach`` metres along the shortest free route from each observation to its goal,
    around the walls and the obstacles in force at the step (``terms`` as
    :func:`stage_routes` takes them); the goal itself once it is within reach."""
    routes = stage_routes(task, terms, layout)
    position = list(layout.position)

    def targets(observations: np.ndarray, goals: np.ndarray, step: int) -> np.ndarray:
        return np.array([
            routes(goal, step).target(observation[position], goal, reach)
            for observation, goal in zip(observations, goals, strict=True)
        ])  # fmt: skip

    return targets


def route_rows(points: np.ndarray, speed: float, horizon: int, layout: Layout) -> np.ndarray:
    """``[H, D]`` plan rows (``D = A + O``) moving along the polyline ``points`` [K, P] (K >= 1)
    from its first point at ``speed`` (m/s: ``speed * STEP_SECONDS`` metres per row), then
    resting at its last point. Velocities are each row's displacement to the next per second
    (zero from arrival on); actions and the other observation dimensions are zero."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(lengths)])  # [K]
    travelled = np.minimum(np.arange(horizon) * speed * STEP_SECONDS, along[-1])  # [H]
    positions = np.stack(
        [np.interp(travelled, along, points[:, axis]) for axis in range(points.shape[1])], axis=1
    )
    velocities = np.diff(positions, axis=0, append=positions[-1:]) / STEP_SECONDS
    rows = np.zeros((horizon, layout.action_dim + layout.observation_dim))
    rows[:, list(layout.position_columns)] = positions
    rows[:, list(layout.velocity_columns)] = velocities
    return rows


def route_plan_fn(
    task: MazeTask,
    terms: Mapping[int, Sequence[Term]],
    layout: Layout,
    speed: float,
    horizon: int | None = None,
) -> PlanFn:
    """A :class:`PlanFn` with no model (a map-assisted baseline): each plan ``[Q, H, D]`` is
    :func:`route_rows` along the shortest free route (:func:`stage_routes`: the walls and the
    ``terms`` in force at the step) from the observation's position to the goal at ``speed``
    (m/s; ``eval.route_speed``), over ``horizon`` rows (default the episode's steps, so every
    plan ends at the goal at rest). Where no route connects them, the plan holds the position
    at rest. The keys, the pinned arrival and the previous plan are not used: the same query
    gives the same route."""
    routes = stage_routes(task, terms, layout)
    rows = task.max_episode_steps if horizon is None else horizon
    position = list(layout.position)

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        plans = []
        for observation, goal in zip(observations, goals, strict=True):
            here = observation[position]
            path = routes(goal, step).path(here, snap=POINT_RADIUS)
            points = (
                np.concatenate([here[None], path[1:-1], goal[None]]) if len(path) else here[None]
            )
            plans.append(route_rows(points, speed, rows, layout))
        return np.stack(plans)

    return plan


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
            envs = [task.make_env(settings.multi_task, obstacles, start) for _ in episodes]
            rollouts = run_episodes(envs, policy, episodes, settings.seed, task.max_episode_steps)
            parts.append(rollouts)
            returns = np.concatenate([part.returns for part in parts])
            score = task.normalized(returns.mean())
            progress.update(
                bar,
                advance=len(episodes),
                description=f"eval {task.name} {mode}: score {score:.1f}",
            )
    return Rollouts.concatenate(parts)
