"""Subgoals from a learned temporal distance: where to aim when the goal is beyond one plan.

A goal-conditioned value (:class:`planner.gcvalue.GoalValue`) says how many steps separate two
states. A plan reaches about as far as its window; beyond that, the policy aims at the waypoint
(an observation of the dataset) that the value puts within ``reach`` steps of the agent and
nearest the goal, and at the goal itself once the value puts it within reach. The choice uses
only the value and the data, never the walls; the diffusion model plans the way to the aim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner.control.policies import TargetFn
from planner.gcvalue import GoalValue


def nearest_to_goal_within_reach(
    to_waypoints: np.ndarray, waypoints_to_goal: np.ndarray, reach: float
) -> np.ndarray:
    """``[Q]`` per query, the waypoint index with the fewest steps to the goal among those
    ``to_waypoints`` [Q, M] puts within ``reach`` steps, the nearest waypoint where none is;
    ``waypoints_to_goal`` [Q, M] the steps from each waypoint to the query's goal."""
    within = to_waypoints <= reach
    ranked = np.where(within, waypoints_to_goal, np.inf)
    return np.where(within.any(axis=1), ranked.argmin(axis=1), to_waypoints.argmin(axis=1))


def value_subgoals(value: GoalValue, reach: float, position: Sequence[int]) -> TargetFn:
    """A target function (:func:`planner.control.policies.toward_targets`): per query, the goal
    [P] where ``value`` puts it within ``reach`` environment steps of the observation, otherwise
    the ``position`` columns of the chosen waypoint (:func:`nearest_to_goal_within_reach`).
    Goals are positions; the value takes them as observations (the two coincide for the point
    mass)."""
    columns = list(position)
    if value.waypoints.shape[1] != len(columns):
        raise ValueError(
            "value subgoals need a value over positions (observations equal to goals); got "
            f"observations of {value.waypoints.shape[1]} and goals of {len(columns)} numbers"
        )

    def targets(observations: np.ndarray, goals: np.ndarray, step: int) -> np.ndarray:
        here = observations[:, columns]
        near = value.steps_to_go(here, goals) <= reach
        to_waypoints = value.pairwise_steps(here, value.waypoints)
        waypoints_to_goal = value.pairwise_steps(value.waypoints, goals).T
        chosen = nearest_to_goal_within_reach(to_waypoints, waypoints_to_goal, reach)
        return np.where(near[:, None], goals, value.waypoints[chosen][:, columns])

    return targets
