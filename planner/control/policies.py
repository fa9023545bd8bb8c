"""Policies over a batch of episodes stepped in lockstep: when to plan, how to act on the plan.

A policy is a pure pair over ``B`` episodes::

    init(episodes [B] int, observations [B, O], goals [B, P]) -> PolicyState
    act(state, observations [B, O]) -> (actions [B, A], state, info)

Its state is data (:class:`PolicyState`): the current plans, where each episode is in its plan,
the planned arrival step, a per-episode "reached" latch and replan counters. Episode ``i``'s
``r``-th plan is drawn from its own key (see :func:`planner_plan_fn`), so a batch of episodes on
different replan schedules gives each episode what running it alone would give.

One policy covers both shipped Maze2D behaviours:

- **open loop** (``ReplanRule()``, the D4RL protocol): one plan per episode, tracked to its end,
  then its last position held at rest.
- **receding-horizon MPC**: replan every ``every`` steps and/or when the agent is more than
  ``deviation`` from where the plan says it should be. Replans keep the goal at the arrival step
  of the previous plan (``pin_arrival``: the goal position is imposed on every row from the
  remaining arrival time onward), so the arrival does not recede by the executed steps; they get
  the previous plan shifted by the executed steps (the planner may warm-start from it). Within
  ``latch_radius`` of the goal the policy stops planning and holds the goal at rest until the
  agent is pushed beyond twice that radius.

Given a ``route_exists(observations, goals) -> [B] bool`` check, episodes with no route from
start to goal are marked infeasible at ``init``: they never replan and hold their start at rest
instead of driving into what blocks them.

Tasks without a goal (locomotion) execute the plans' own actions (:func:`plan_action_policy`),
and policies that never plan act from the observation alone (:func:`feedback_policy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from planner.control.tracking import (
    displacement_actions,
    hold_actions,
    pursuit_actions,
    pursuit_targets,
    tracking_actions,
)
from planner.energies.terms import Layout
from planner.planning.planner import Planner, shift_plan


class PlanFn(Protocol):
    """Plans ``[Q, H, D]`` (environment units) for ``Q`` queries: ``episodes`` [Q] and
    ``replans`` [Q] (which plan of which episode: they pick the key), ``observations`` [Q, O],
    ``goals`` [Q, P], ``arrival`` [Q] the row from which the goal is imposed (None: the last row
    only), ``previous`` [Q, H, D] the previous plans shifted to now (None at the first plan),
    ``step`` the episode step (the lockstep batch shares it: what the planner knows of the world
    may change with it)."""

    def __call__(
        self,
        episodes: np.ndarray,
        replans: np.ndarray,
        observations: np.ndarray,
        goals: np.ndarray,
        arrival: np.ndarray | None,
        previous: np.ndarray | None,
        step: int,
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ReplanRule:
    """When a policy plans again. The defaults never replan (open loop).

    ``every``: replan after this many steps of a plan (0: never). ``deviation``: replan when the
    position is farther than this from the plan's position for the current step (environment
    units; 0: never). ``pin_arrival``: replans keep the previous plan's arrival step.
    ``latch_radius``: within this distance of the goal, stop planning and hold the goal (None:
    never). ``arrival_tolerance``: a plan has arrived from the first row after which every row
    lies within this distance of the goal. ``at_steps``: episode steps at which the world
    changes (an obstacle appears): every episode still planning replans then.
    """

    every: int = 0
    deviation: float = 0.0
    at_steps: tuple[int, ...] = ()
    pin_arrival: bool = True
    latch_radius: float | None = None
    arrival_tolerance: float = 0.1


@dataclass(frozen=True)
class PolicyState:
    """The state of ``B`` episodes; every field is an array with a leading ``B`` axis.

    ``episodes`` [B] ids; ``goals`` [B, P]; ``plans`` [B, H, D] the current plans (environment
    units); ``step`` [B] steps taken; ``plan_began`` [B] the episode step of each plan's first
    row; ``arrival`` [B] the episode step at which the plan reaches the goal; ``reached`` [B] the
    latch; ``replans`` [B] plans made after the first; ``feasible`` [B] whether a route exists;
    ``progress`` [B] the plan row reached along the path (pursuit only).
    """

    episodes: np.ndarray
    goals: np.ndarray
    plans: np.ndarray
    step: np.ndarray
    plan_began: np.ndarray
    arrival: np.ndarray
    reached: np.ndarray
    replans: np.ndarray
    feasible: np.ndarray
    progress: np.ndarray

    def replace(self, **changes: Any) -> PolicyState:
        return dataclasses.replace(self, **changes)

    def take(self, rows: np.ndarray) -> PolicyState:
        """The state of the episodes at ``rows`` [K] (positions in this batch)."""
        return PolicyState(
            **{name: getattr(self, name)[rows] for name in self.__dataclass_fields__}
        )

    @staticmethod
    def first(
        episodes: np.ndarray,
        goals: np.ndarray,
        plans: np.ndarray,
        arrival: np.ndarray | None = None,
        feasible: np.ndarray | None = None,
    ) -> PolicyState:
        """The state before the first step: counters at zero, latch open; ``arrival`` and
        ``feasible`` default to zero and True."""
        zeros = np.zeros(len(episodes), int)
        return PolicyState(
            np.asarray(episodes), np.asarray(goals), np.asarray(plans), zeros, zeros.copy(),
            zeros.copy() if arrival is None else arrival, np.zeros(len(episodes), bool),
            zeros.copy(), np.ones(len(episodes), bool) if feasible is None else feasible,
            zeros.copy(),
        )  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """A pure ``(init, act)`` pair; see the module docstring."""

    init: Callable[[np.ndarray, np.ndarray, np.ndarray], PolicyState]
    act: Callable[[PolicyState, np.ndarray], tuple[np.ndarray, PolicyState, dict[str, Any]]]


def planned_arrival(plans: np.ndarray, goals: np.ndarray, layout: Layout, tolerance: float):
    """``[B]`` the first row of ``plans`` [B, H, D] from which every row lies within
    ``tolerance`` of ``goals`` [B, P]; ``H - 1`` where the plan never settles there."""
    positions = plans[..., list(layout.position_columns)]
    away = np.linalg.norm(positions - goals[:, None], axis=-1) > tolerance  # [B, H]
    horizon = plans.shape[1]
    last_away = horizon - 1 - np.argmax(away[:, ::-1], axis=1)
    return np.where(away.any(axis=1), np.minimum(last_away + 1, horizon - 1), 0)


def bucket(indices: np.ndarray, batch: int) -> np.ndarray:
    """``indices`` padded (by repeating the first) to the next power of two, at most ``batch``:
    replans of a few episodes reuse a handful of compiled batch sizes."""
    size = min(batch, 1 << int(np.ceil(np.log2(len(indices)))))
    return np.concatenate([indices, np.full(size - len(indices), indices[0])])


RouteCheck = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (observations [Q, O], goals [Q, P], episode step) -> the points [Q, P] to plan toward
TargetFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def receding_horizon_policy(
    plan_fn: PlanFn,
    layout: Layout,
    rule: ReplanRule,
    route_exists: RouteCheck | None = None,
    lookahead: float | None = None,
    step_size: float | None = None,
) -> Policy:
    """A :class:`Policy` planning with ``plan_fn`` and following its plans under ``rule``;
    ``route_exists(observations [B, O], goals [B, P]) -> [B] bool`` marks infeasible episodes.
    Plans are tracked in time (:func:`tracking_actions`), or with a ``lookahead`` distance
    pursued along their path (:func:`pursuit_actions`). With ``step_size`` the body is
    position-controlled (:func:`displacement_actions`) and its plans are pursued (``lookahead``
    required)."""
    if step_size is not None and lookahead is None:
        raise ValueError("a position-controlled body pursues its plans: give a lookahead")

    def toward(points: np.ndarray, observations: np.ndarray) -> np.ndarray:
        if step_size is None:
            return hold_actions(points, observations, layout)
        return displacement_actions(points, observations, layout, step_size)

    def init(episodes, observations, goals):
        first = np.zeros(len(episodes), int)
        plans = plan_fn(np.asarray(episodes), first, observations, goals, None, None, 0)
        arrival = planned_arrival(plans, goals, layout, rule.arrival_tolerance)
        feasible = None
        if route_exists is not None:
            feasible = np.asarray(route_exists(observations, goals), bool)
        return PolicyState.first(episodes, goals, plans, arrival, feasible)

    def latched(state: PolicyState, observations: np.ndarray) -> np.ndarray:
        if rule.latch_radius is None:
            return state.reached
        distance = np.linalg.norm(observations[:, list(layout.position)] - state.goals, axis=1)
        radius = np.where(state.reached, 2 * rule.latch_radius, rule.latch_radius)
        return distance <= radius

    def due(state: PolicyState, observations: np.ndarray, reached: np.ndarray) -> np.ndarray:
        index = state.step - state.plan_began
        rows = np.minimum(index, state.plans.shape[1] - 1)
        planned = state.plans[np.arange(len(rows)), rows][:, list(layout.position_columns)]
        deviation = np.linalg.norm(observations[:, list(layout.position)] - planned, axis=1)
        periodic = rule.every > 0 and index >= rule.every
        deviated = deviation > rule.deviation if rule.deviation > 0 else False
        changed = np.isin(state.step, rule.at_steps)
        return state.feasible & ~reached & (periodic | deviated | changed)

    def replan(state: PolicyState, observations: np.ndarray, which: np.ndarray) -> PolicyState:
        rows = bucket(which, len(state.step))
        horizon = state.plans.shape[1]
        remaining = state.arrival[rows] - state.step[rows]
        arrival = np.where(remaining >= 1, np.minimum(remaining, horizon - 1), horizon - 1)
        previous = shift_plan(state.plans[rows], state.step[rows] - state.plan_began[rows])
        new = plan_fn(
            state.episodes[rows], state.replans[rows] + 1, observations[rows],
            state.goals[rows], arrival if rule.pin_arrival else None, previous,
            int(state.step[rows].max()),
        )[: len(which)]  # fmt: skip
        goals = state.goals[which]
        arrived = planned_arrival(new, goals, layout, rule.arrival_tolerance)
        plans, plan_began = state.plans.copy(), state.plan_began.copy()
        arrival_step, replans = state.arrival.copy(), state.replans.copy()
        progress = state.progress.copy()
        plans[which], plan_began[which] = new, state.step[which]
        arrival_step[which] = state.step[which] + arrived
        replans[which] += 1
        progress[which] = 0
        return state.replace(
            plans=plans, plan_began=plan_began, arrival=arrival_step, replans=replans,
            progress=progress,
        )  # fmt: skip

    def act(state, observations):
        reached = latched(state, observations)
        replanning = due(state, observations, reached)
        if replanning.any():
            state = replan(state, observations, np.flatnonzero(replanning))
        states, progress = state.plans[..., layout.action_dim :], state.progress
        if step_size is not None:
            paths = state.plans[..., list(layout.position_columns)]
            here = observations[:, list(layout.position)]
            target, _, progress = pursuit_targets(paths, here, progress, lookahead)
            tracking = toward(paths[np.arange(len(paths)), target], observations)
        elif lookahead is None:
            index = state.step - state.plan_began
            tracking = tracking_actions(states, observations, index, layout)
        else:
            tracking, progress = pursuit_actions(states, observations, progress, layout, lookahead)
        holding = toward(state.goals, observations)
        starts = state.plans[:, 0, list(layout.position_columns)]  # the imposed start
        stopping = toward(starts, observations)
        actions = np.where(
            ~state.feasible[:, None], stopping, np.where(reached[:, None], holding, tracking)
        )
        info = {"replanned": replanning, "reached": reached}
        state = state.replace(step=state.step + 1, reached=reached, progress=progress)
        return actions, state, info

    return Policy(init, act)


def straight_plan_fn(layout: Layout, rows: int) -> PlanFn:
    """A :class:`PlanFn` with no model (a baseline): ``rows`` rows evenly along the straight
    line from each position to its goal (actions and velocities zero)."""

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        here = observations[:, list(layout.position)]
        fractions = np.linspace(0.0, 1.0, rows)[None, :, None]
        plans = np.zeros((len(goals), rows, layout.action_dim + layout.observation_dim))
        plans[..., list(layout.position_columns)] = (
            here[:, None] + fractions * (goals - here)[:, None]
        )
        return plans

    return plan


def toward_targets(plan_fn: PlanFn, targets: TargetFn) -> PlanFn:
    """``plan_fn`` planning toward ``targets(observations, goals, step)`` instead of the goals:
    intermediate points on the way to goals that one plan cannot reach. A query whose target is
    not its goal has the target imposed on its last row only, not from a pinned arrival."""

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        aims = np.asarray(targets(observations, goals, step), goals.dtype)
        if arrival is not None:
            intermediate = np.any(aims != goals, axis=1)
            arrival = np.where(intermediate, previous.shape[1] - 1, arrival)
        return plan_fn(episodes, replans, observations, aims, arrival, previous, step)

    return plan


# (plans [Q, S, D], episode step) -> [Q] bool: which plans the agent can follow
FeasibleFn = Callable[[np.ndarray, int], np.ndarray]


def earliest_arrival(plan_fn: PlanFn, arrivals: Sequence[int], feasible: FeasibleFn) -> PlanFn:
    """``plan_fn`` whose plans without an imposed arrival (the first plan of an episode, and
    every plan when replans do not pin it) first try the goal imposed from each step of
    ``arrivals``, earliest first, and keep per query the first plan that ``feasible`` accepts;
    queries that accept none get the plan with the goal on its last row. A plan that must spend
    its whole horizon fills the slack by wandering; this one arrives as soon as the model can."""

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        if arrival is not None:
            return plan_fn(episodes, replans, observations, goals, arrival, previous, step)
        chosen, searching = None, np.ones(len(episodes), bool)
        for steps in sorted(arrivals):
            pinned = np.full(len(episodes), steps)
            plans = plan_fn(episodes, replans, observations, goals, pinned, previous, step)
            accepted = searching & np.asarray(feasible(plans, step), bool)
            chosen = plans if chosen is None else np.where(accepted[:, None, None], plans, chosen)
            searching &= ~accepted
            if not searching.any():
                return chosen
        last_row = plan_fn(episodes, replans, observations, goals, None, previous, step)
        return last_row if chosen is None else np.where(searching[:, None, None], last_row, chosen)

    return plan


def stage_start(stages: Mapping[int, Any], step: int) -> int:
    """The key of ``stages`` (each keyed by the episode step from which it holds; key 0
    required) in force at ``step``."""
    return max(start for start in stages if start <= step)


def planner_plan_fn(
    planners: Mapping[int, Planner],
    warm_start_level: int | None,
    seed: int,
    n_candidates: int,
    impose_goal: bool = True,
    average_best: int = 1,
) -> PlanFn:
    """A :class:`PlanFn` over :class:`Planner` s: ``planners[s]`` plans from episode step ``s``
    on (a key 0 is required; later keys are steps at which the world, and so the planner's
    terms, change). Episode ``i``'s ``r``-th plan uses the key
    ``fold_in(fold_in(key(seed), i), r)``. With ``warm_start_level`` replans re-noise the
    previous plan to that level. Without ``impose_goal`` plans are fixed at the start only. The
    plan returned is the mean of the ``average_best`` best candidates (the best one when 1)."""
    if 0 not in planners:
        raise ValueError("planners need one for step 0")
    root = jax.random.key(seed)
    warm = {
        step: None if warm_start_level is None else planner.warm_started(warm_start_level)
        for step, planner in planners.items()
    }

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        keys = jax.vmap(lambda e, r: jax.random.fold_in(jax.random.fold_in(root, e), r))(
            jnp.asarray(episodes), jnp.asarray(replans)
        )
        stage = stage_start(planners, step)
        warm_start = previous is not None and warm[stage] is not None
        chosen = warm[stage] if warm_start else planners[stage]
        plans = chosen.plan(
            keys, observations, goals if impose_goal else None, n_candidates,
            warm_start=previous if warm_start else None,
            goal_from=arrival if impose_goal else None,
        )  # fmt: skip
        return plans.mean_of_best(average_best)

    return plan


# (observations [B, O], next observations [B, O]) -> the actions [B, A] from one to the other
InverseDynamicsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def plan_action_policy(
    plan_fn: PlanFn,
    action_dim: int,
    every: int = 1,
    inverse_dynamics: InverseDynamicsFn | None = None,
) -> Policy:
    """Receding-horizon control for tasks without a goal (locomotion): plan from the current
    observations, execute the plan's own actions for ``every`` steps, plan again. ``every=1``
    is Diffuser's protocol (the first action of a new plan at every step). Replans get the
    previous plans shifted by the executed steps, for a warm start. With ``inverse_dynamics``
    the action executed is the one it gives from the current observation to the plan's next
    observation (Decision Diffuser's action head), not the plan's own."""
    if every < 1:
        raise ValueError(f"plans are executed for at least one step; got every={every}")

    def init(episodes, observations, goals):
        first = np.zeros(len(episodes), int)
        plans = plan_fn(np.asarray(episodes), first, observations, goals, None, None, 0)
        return PolicyState.first(episodes, goals, plans)

    def act(state, observations):
        executed = state.step - state.plan_began
        replanning = executed >= every
        if replanning.any():
            previous = shift_plan(state.plans, executed)
            new = plan_fn(
                state.episodes, state.replans + 1, observations, state.goals, None, previous,
                int(state.step.max()),
            )  # fmt: skip
            state = state.replace(
                plans=np.where(replanning[:, None, None], new, state.plans),
                plan_began=np.where(replanning, state.step, state.plan_began),
                replans=state.replans + replanning,
            )
        last = state.plans.shape[1] - 1
        index = np.minimum(state.step - state.plan_began, last)
        rows = np.arange(len(index))
        if inverse_dynamics is None:
            actions = state.plans[rows, index, :action_dim]
        else:
            planned_next = state.plans[rows, np.minimum(index + 1, last), action_dim:]
            actions = np.asarray(inverse_dynamics(observations, planned_next))
        info = {"replanned": replanning}
        return actions, state.replace(step=state.step + 1), info

    return Policy(init, act)


def feedback_policy(act_fn: Callable[[np.ndarray], np.ndarray]) -> Policy:
    """A policy that never plans: ``act_fn(observations [B, O]) -> actions [B, A]`` at every
    step (e.g. the behaviour-cloning baseline)."""
    return goal_feedback_policy(lambda observations, goals: act_fn(observations))


def goal_feedback_policy(act_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Policy:
    """A goal-conditioned policy that never plans: ``act_fn(observations [B, O], goals [B, P])
    -> actions [B, A]`` at every step (e.g. goal-conditioned behaviour cloning)."""

    def init(episodes, observations, goals):
        return PolicyState.first(episodes, goals, np.zeros((len(episodes), 0, 0)))

    def act(state, observations):
        actions = np.asarray(act_fn(observations, state.goals))
        return actions, state.replace(step=state.step + 1), {}

    return Policy(init, act)
