"""Regeneration of the D4RL ``maze2d-*-v1`` datasets and this simulator's reference scores.

The procedure follows ``shared/specs/maze2d-data.md``: one continuous run without resets in which
a noisy waypoint controller (PD tracking of grid-path waypoints, Gaussian action noise of std 0.5)
pursues random goals; a new goal is drawn when the controller reports the goal solved or after
300 / 600 / 800 steps without success. The output is a dict of arrays in the D4RL hdf5 layout.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from planner.tasks.maze2d import (
    GOAL_RADIUS,
    START_VELOCITY_STD,
    Maze2DEnv,
    MazeTask,
    PointMassSim,
    sample_cell_position,
)

# Grid moves in the order the reference Q-iteration breaks ties: (UP, DOWN, LEFT, RIGHT).
GRID_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
P_GAIN = 10.0
D_GAIN = 1.0
SOLVE_DISTANCE = 0.1  # a waypoint (or the target) is reached within this distance...
SOLVE_DISPLACEMENT = 0.1  # ...while moving less than this between two controller calls
WAYPOINT_JITTER = 0.2  # intermediate waypoints are cell - 0.2 * U(0, 1) per axis
ACTION_NOISE_STD = 0.5
NOISE_CHUNK = 65_536  # noise is drawn in chunks so a shorter run is a prefix of a longer one


@functools.cache
def distance_to_cell(walls_key: tuple[str, ...], target: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]`` grid-path length from every free cell to ``target`` (inf at walls)."""
    walls = np.array([[ch == "#" for ch in row] for row in walls_key])
    distance = np.full(walls.shape, np.inf)
    distance[target] = 0
    frontier = deque([target])
    while frontier:
        row, col = frontier.popleft()
        for d_row, d_col in GRID_MOVES:
            cell = (row + d_row, col + d_col)
            if not walls[cell] and distance[cell] == np.inf:
                distance[cell] = distance[row, col] + 1
                frontier.append(cell)
    return distance


def grid_path(task: MazeTask, start: tuple[int, int], target: tuple[int, int]) -> list:
    """Cells from ``start`` (excluded) to ``target`` (included) along a shortest grid path.

    Each move goes to the free neighbour nearest the target, ties broken in ``GRID_MOVES`` order
    (what Q-iteration with a hard max and ties to the lowest action gives). A ``start`` that
    rounds into a wall cell simply moves to its best free neighbour first.
    """
    distance = distance_to_cell(task.layout, target)
    path, cell = [], start
    while cell != target:
        neighbours = [(cell[0] + dr, cell[1] + dc) for dr, dc in GRID_MOVES]
        best = min(neighbours, key=lambda c: distance[c])  # min keeps the first of ties
        if distance[best] == np.inf:
            raise ValueError(f"no path from cell {start} to cell {target} in {task.name}")
        path.append(best)
        cell = best
    return path


class WaypointController:
    """The noise-free data-collection controller: grid-path waypoints tracked by a PD law.

    It keeps state between calls (current target cell, waypoints, the previous position), as the
    reference does; the evaluation protocol relies on reusing one controller across episodes.
    """

    def __init__(self, task: MazeTask, rng: np.random.Generator):
        self.task = task
        self.rng = rng
        self.target_cell: tuple[int, int] | None = None
        self.waypoints: list[tuple[float, float]] = []
        self.waypoint_index = 0
        self.previous_position = (0.0, 0.0)

    def act(
        self, x: float, y: float, vx: float, vy: float, goal: tuple[float, float]
    ) -> tuple[float, float, bool]:
        """Action ``(ax, ay)`` in [-1, 1] toward ``goal`` and whether the goal counts as solved."""
        target_cell = (round(goal[0]), round(goal[1]))
        if target_cell != self.target_cell:
            self._replan((round(x), round(y)), target_cell)
        displacement = math.hypot(x - self.previous_position[0], y - self.previous_position[1])
        slow = displacement < SOLVE_DISPLACEMENT
        solved = slow and math.hypot(x - target_cell[0], y - target_cell[1]) < SOLVE_DISTANCE
        aim = target_cell if solved else self.waypoints[self.waypoint_index]
        if not solved and slow and math.hypot(x - aim[0], y - aim[1]) < SOLVE_DISTANCE:
            self.waypoint_index = min(self.waypoint_index + 1, len(self.waypoints) - 1)
        self.previous_position = (x, y)
        ax = P_GAIN * (aim[0] - x) - D_GAIN * vx
        ay = P_GAIN * (aim[1] - y) - D_GAIN * vy
        return min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0), solved

    def _replan(self, start_cell: tuple[int, int], target_cell: tuple[int, int]) -> None:
        cells = grid_path(self.task, start_cell, target_cell)[:-1]
        jitter = WAYPOINT_JITTER * self.rng.random((len(cells), 2))
        self.waypoints = [(r - jr, c - jc) for (r, c), (jr, jc) in zip(cells, jitter, strict=True)]
        self.waypoints.append((float(target_cell[0]), float(target_cell[1])))
        self.waypoint_index = 0
        self.target_cell = target_cell


def generate_maze2d(
    task: MazeTask,
    steps: int,
    seed: int,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run the data-collection procedure for ``steps`` steps.

    Returns D4RL-layout arrays: ``observations`` [N, 4], ``actions`` [N, 2], ``rewards`` [N],
    ``terminals`` [N] (all False), ``timeouts`` [N] (segment ends: goal solved or step limit),
    ``infos/goal``, ``infos/qpos``, ``infos/qvel`` [N, 2]. Deterministic for a given ``seed``;
    ``progress(n)`` is called every ``NOISE_CHUNK`` steps with the steps just done.
    """
    goal_rng, jitter_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    sim = PointMassSim(task)
    controller = WaypointController(task, jitter_rng)
    sim.set_state(
        sample_cell_position(task, goal_rng), goal_rng.normal(0.0, START_VELOCITY_STD, size=2)
    )
    goal = tuple(sample_cell_position(task, goal_rng))

    observations = np.empty((steps, 4), np.float64)
    actions = np.empty((steps, 2), np.float64)
    goals = np.empty((steps, 2), np.float64)
    timeouts = np.zeros(steps, bool)
    segment_steps = 0
    for chunk_start in range(0, steps, NOISE_CHUNK):
        chunk_end = min(chunk_start + NOISE_CHUNK, steps)
        noise = noise_rng.normal(0.0, ACTION_NOISE_STD, size=(NOISE_CHUNK, 2)).tolist()
        for i in range(chunk_start, chunk_end):
            x, y, vx, vy = observation = sim.observe()
            ax, ay, solved = controller.act(x, y, vx, vy, goal)
            noise_x, noise_y = noise[i - chunk_start]
            ax = min(max(ax + noise_x, -1.0), 1.0)
            ay = min(max(ay + noise_y, -1.0), 1.0)
            observations[i] = observation
            actions[i] = (ax, ay)
            goals[i] = goal
            sim.step(ax, ay)
            segment_steps += 1
            if solved or segment_steps >= task.max_episode_steps:
                timeouts[i] = True
                goal = tuple(sample_cell_position(task, goal_rng))
                segment_steps = 0
        if progress is not None:
            progress(chunk_end - chunk_start)

    at_eval_goal = np.linalg.norm(observations[:, :2] - task.eval_goal, axis=1) <= GOAL_RADIUS
    return {
        "observations": observations.astype(np.float32),
        "actions": actions.astype(np.float32),
        "rewards": at_eval_goal.astype(np.float32),
        "terminals": np.zeros(steps, bool),
        "timeouts": timeouts,
        "infos/goal": goals.astype(np.float32),
        "infos/qpos": observations[:, :2].astype(np.float32),
        "infos/qvel": observations[:, 2:].astype(np.float32),
    }


# --- reference scores ------------------------------------------------------------------------


Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (observation [4], goal [2]) -> action [2]


def rollout_returns(
    task: MazeTask, policy_for_episode: Callable[[int], Policy], episodes: int, seed: int
) -> np.ndarray:
    """``[episodes]`` returns under the D4RL protocol; ``policy_for_episode(i)`` acts in episode i.

    The environment is seeded once with ``seed``, so episode ``i``'s start is the same whichever
    policy runs.
    """
    env = Maze2DEnv(task)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        observation, info = env.reset(seed=seed if episode == 0 else None)
        policy = policy_for_episode(episode)
        truncated = False
        while not truncated:
            observation, reward, _, truncated, _ = env.step(policy(observation, info["goal"]))
            returns[episode] += reward
    return returns


def controller_policy(controller: WaypointController) -> Policy:
    """The noise-free controller as a policy (its state carries over between calls)."""

    def policy(observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return np.array(controller.act(*observation.tolist(), tuple(goal.tolist()))[:2])

    return policy


def reference_scores(task: MazeTask, episodes: int = 100, seed: int = 0) -> dict[str, Any]:
    """Returns of the reference policies on this simulator, ``episodes`` each, D4RL protocol.

    ``random``: uniform actions (D4RL's ref_min). ``controller``: the noise-free controller with
    one controller object reused across episodes, as D4RL's reference script did (ref_max).
    ``oracle``: a fresh, re-planning controller every episode (context only).
    """
    action_rng = np.random.default_rng(seed)
    waypoint_rng = np.random.default_rng(seed)
    reused = controller_policy(WaypointController(task, waypoint_rng))
    policies: dict[str, Callable[[int], Policy]] = {
        "random": lambda _: lambda obs, goal: action_rng.uniform(-1.0, 1.0, size=2),
        "controller": lambda _: reused,
        "oracle": lambda _: controller_policy(WaypointController(task, waypoint_rng)),
    }
    summary: dict[str, Any] = {"task": task.name, "episodes": episodes, "seed": seed}
    for name, policy_for_episode in policies.items():
        returns = rollout_returns(task, policy_for_episode, episodes, seed)
        summary[name] = {
            "mean_return": float(returns.mean()),
            "stderr_return": float(returns.std(ddof=1) / math.sqrt(episodes)),
            "d4rl_normalized": float(task.normalized(returns.mean())),
        }
    summary["ref_min"] = summary["random"]["mean_return"]
    summary["ref_max"] = summary["controller"]["mean_return"]
    return summary
