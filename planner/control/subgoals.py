"""Subgoals from a learned temporal distance: where to aim when the goal is beyond one plan.

A goal-conditioned value (:class:`planner.gcvalue.GoalValue`) says how many steps separate two
states. A plan reaches about as far as its window; beyond that, the policy aims at the waypoint
(an observation of the dataset) that the value puts within ``reach`` steps of the agent and
nearest the goal, and at the goal itself once the value puts it within reach. The choice uses
only the value and the data, never the walls; the diffusion model plans the way to the aim.

A value trained on short segments is accurate over short distances and may underestimate long
ones across a wall, where the greedy choice above then stalls. :func:`graph_subgoals` trusts only
the short distances: the waypoints form a graph whose edges are the pairs the value puts within
``edge`` steps, the shortest route through it chains those (Search on the Replay Buffer,
Eysenbach et al. 2019), and the aim is the route's farthest waypoint within ``reach`` steps along
it. The graph is learned (value and data), not the maze's map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

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
    columns = _position_columns(value, position)

    def targets(observations: np.ndarray, goals: np.ndarray, step: int) -> np.ndarray:
        here = observations[:, columns]
        near = value.steps_to_go(here, goals) <= reach
        to_waypoints = value.pairwise_steps(here, value.waypoints)
        waypoints_to_goal = value.pairwise_steps(value.waypoints, goals).T
        chosen = nearest_to_goal_within_reach(to_waypoints, waypoints_to_goal, reach)
        return np.where(near[:, None], goals, value.waypoints[chosen][:, columns])

    return targets


def route_distances(steps: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """``(distances [M, M], predecessors [M, M])``: shortest routes between waypoints over the
    graph whose edges are the pairs ``steps`` [M, M] puts within ``edge`` steps (``inf`` and
    ``-9999`` where no route joins a pair; ``predecessors[i, j]`` the node before ``j`` on the
    route from ``i``)."""
    weights = np.where(steps <= edge, np.maximum(steps, 1e-6), 0.0)
    np.fill_diagonal(weights, 0.0)
    return shortest_path(csr_matrix(weights), directed=True, return_predecessors=True)


def route_aim(
    from_here: np.ndarray,
    to_goal: np.ndarray,
    distances: np.ndarray,
    predecessors: np.ndarray,
    edge: float,
    reach: float,
) -> int:
    """The waypoint to aim at, or ``-1`` for the goal itself: the shortest route from here
    (entering the graph at waypoints ``from_here`` [M] puts within ``edge`` steps, the nearest
    where none is) to the goal (leaving at waypoints ``to_goal`` [M] puts within ``edge``, the
    nearest where none is) over ``distances`` (:func:`route_distances`); the goal where the
    whole route is within ``reach``, else the route's farthest waypoint within ``reach``."""
    entry, exit_ = _edges_or_nearest(from_here, edge), _edges_or_nearest(to_goal, edge)
    through = distances + exit_[None, :]  # [entry waypoint, exit waypoint]
    first = int(np.argmin(entry + through.min(axis=1)))
    last = int(np.argmin(through[first]))
    if not np.isfinite(entry[first] + through[first, last]):
        return int(from_here.argmin())  # no route: stay with the nearest waypoint
    if entry[first] + through[first, last] <= reach:
        return -1
    route = [last]
    while route[-1] != first:
        route.append(int(predecessors[first, route[-1]]))
    within = entry[first] + distances[first, route] <= reach  # from the last back to the first
    return route[int(np.argmax(within))] if within.any() else first


def _edges_or_nearest(steps: np.ndarray, edge: float) -> np.ndarray:
    """``steps`` [M] where within ``edge``, ``inf`` elsewhere; the nearest kept where none is."""
    edges = np.where(steps <= edge, steps, np.inf)
    edges[steps.argmin()] = steps.min()
    return edges


def graph_subgoals(
    value: GoalValue, edge: float, reach: float, position: Sequence[int]
) -> TargetFn:
    """A target function like :func:`value_subgoals` whose aims follow the shortest route over
    the value's waypoint graph (:func:`route_distances`, :func:`route_aim`): the goal where the
    value puts it within ``edge`` steps or the route within ``reach``, else the route's farthest
    waypoint within ``reach``."""
    columns = _position_columns(value, position)
    distances, predecessors = route_distances(
        value.pairwise_steps(value.waypoints, value.waypoints), edge
    )

    def targets(observations: np.ndarray, goals: np.ndarray, step: int) -> np.ndarray:
        here = observations[:, columns]
        direct = value.steps_to_go(here, goals)
        from_here = value.pairwise_steps(here, value.waypoints)
        to_goal = value.pairwise_steps(value.waypoints, goals).T
        aims = [
            -1 if direct[q] <= edge
            else route_aim(from_here[q], to_goal[q], distances, predecessors, edge, reach)
            for q in range(len(here))
        ]  # fmt: skip
        chosen = value.waypoints[np.maximum(aims, 0)][:, columns]
        return np.where(np.array(aims)[:, None] < 0, goals, chosen)

    return targets


def _position_columns(value: GoalValue, position: Sequence[int]) -> list[int]:
    """The observation columns of the goals, checked against the value's observations."""
    columns = list(position)
    if value.waypoints.shape[1] != len(columns):
        raise ValueError(
            "value subgoals need a value over positions (observations equal to goals); got "
            f"observations of {value.waypoints.shape[1]} and goals of {len(columns)} numbers"
        )
    return columns
