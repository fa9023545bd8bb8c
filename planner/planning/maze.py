"""Maze2D checks around a plan: points inside walls, plans through walls, blocked routes, and
whether the simulator could execute a plan at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from planner.energies.base import Term
from planner.energies.terms import Layout, obstacle_term
from planner.errors import PlannerError
from planner.tasks.maze2d import (
    GOAL_RADIUS,
    POINT_RADIUS,
    STEP_SECONDS,
    VELOCITY_LIMIT,
    WALL_OFFSET,
    MazeTask,
    wall_rectangles,
)

GRID_RESOLUTION = 0.05  # metres per cell of the blocked-route check
# A step is a jump when it moves farther than this many times what the speed limit allows
# in one step (0.05 m); the slack covers the integrator and plans that ride the limit.
JUMP_FACTOR = 2.0
LIMIT_STEP = VELOCITY_LIMIT * STEP_SECONDS  # the farthest one step moves at the speed limit
SEGMENT_SAMPLES = 8  # points checked along each step of a plan


class PlanRequestError(PlannerError, ValueError):
    """A start, goal or constraint set that no plan can satisfy."""


def inside_walls(task: MazeTask, positions: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """``[...]`` bool: which positions ``[..., 2]`` (D4RL frame) lie inside a wall cell grown
    by ``margin``."""
    rectangles = wall_rectangles(task)
    p = np.asarray(positions)[..., None, :]
    inside = (p >= rectangles[:, :2] - margin) & (p <= rectangles[:, 2:] + margin)
    return inside.all(axis=-1).any(axis=-1)


def walls_term(task: MazeTask, layout: Layout, guide: bool) -> Term:
    """The maze's walls as one hard box-obstacle constraint. With ``guide`` False the term only
    scores candidates (no guidance steps), so a plan through a wall is never the one chosen."""
    rectangles = jnp.asarray(wall_rectangles(task), jnp.float32)
    data = {"low": rectangles[:, :2], "high": rectangles[:, 2:], "margin": jnp.float32(0.0)}
    return obstacle_term("box", data, layout, {} if guide else {"n_guide_steps": 0}, "walls")


def check_point(task: MazeTask, point: Sequence[float], name: str) -> None:
    """Refuse a ``name`` point outside the maze or inside one of its walls."""
    point = np.asarray(point, float)
    rows, cols = task.walls.shape
    low = np.full(2, -WALL_OFFSET)
    high = np.array([rows, cols]) - WALL_OFFSET
    if np.any(point < low) or np.any(point > high):
        raise PlanRequestError(
            f"{name} {point.tolist()} is outside the {task.name} maze "
            f"(x in [{low[0]}, {high[0]}], y in [{low[1]}, {high[1]}])"
        )
    if inside_walls(task, point):
        cell = np.floor(point + WALL_OFFSET).astype(int).tolist()
        raise PlanRequestError(
            f"{name} {point.tolist()} is inside the wall cell {cell} of {task.name}"
        )


def blocked_positions(terms: Sequence[Term], positions: np.ndarray, layout: Layout) -> np.ndarray:
    """``[N]`` bool: positions ``[N, 2]`` that violate an obstacle or bounds term when visited."""
    rows = np.zeros((len(positions), 1, layout.action_dim + layout.observation_dim), np.float32)
    rows[:, 0, list(layout.position_columns)] = positions
    blocked = np.zeros(len(positions), bool)
    for obstacle in terms:
        if obstacle.name in ("circle", "box", "bounds"):
            blocked |= np.asarray(jax.vmap(obstacle.violation_of)(jnp.asarray(rows))) > 0
    return blocked


def free_grid(
    task: MazeTask, terms: Sequence[Term], layout: Layout, clearance: float = GRID_RESOLUTION / 2
) -> np.ndarray:
    """``[X, Y]`` bool: which points of the maze's grid (``GRID_RESOLUTION`` apart from
    ``-WALL_OFFSET``; index ``i`` is ``x = -WALL_OFFSET + i * GRID_RESOLUTION``) are free of
    walls grown by ``clearance`` and of obstacle and bounds ``terms``. The default, half a grid
    cell, keeps a gap of zero width between an obstacle and a wall from counting as free."""
    rows, cols = task.walls.shape
    xs = np.arange(-WALL_OFFSET, rows - WALL_OFFSET, GRID_RESOLUTION)
    ys = np.arange(-WALL_OFFSET, cols - WALL_OFFSET, GRID_RESOLUTION)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    walls = inside_walls(task, grid, clearance)
    return (~walls & ~blocked_positions(terms, grid, layout)).reshape(len(xs), len(ys))


def grid_index(free: np.ndarray, point: np.ndarray) -> tuple[int, int]:
    """The ``free_grid`` index nearest to ``point`` [2]."""
    index = np.round((np.asarray(point, float) + WALL_OFFSET) / GRID_RESOLUTION).astype(int)
    return tuple(np.clip(index, 0, np.array(free.shape) - 1).tolist())


def route_exists(
    task: MazeTask,
    start: np.ndarray,
    goal: np.ndarray,
    terms: Sequence[Term],
    layout: Layout,
) -> bool:
    """Whether free space (no wall, no obstacle, within bounds) connects ``start`` and ``goal``,
    on a grid of ``GRID_RESOLUTION``."""
    free = free_grid(task, terms, layout)
    labels, _ = ndimage.label(free)
    start_label, goal_label = labels[grid_index(free, start)], labels[grid_index(free, goal)]
    return bool(start_label != 0 and start_label == goal_label)


@dataclass(frozen=True)
class Routes:
    """Shortest routes through free space to one goal, on the grid of :func:`free_grid`
    (8-connected): ``distance`` [X, Y] metres to the goal (inf where no route), ``toward``
    [X * Y] the next grid point (flat index) on the way (-9999 at the goal and where no route).
    """

    free: np.ndarray
    distance: np.ndarray
    toward: np.ndarray

    def entry(self, start: np.ndarray, snap: float = 0.0) -> int | None:
        """The grid point (flat index) a route from ``start`` [2] begins at: the one nearest
        ``start``, or where that one has no route, the nearest within ``snap`` metres that has
        one (a point mass pressed against a wall is nearer to it than the routes' clearance);
        None when there is none."""
        here = np.ravel_multi_index(grid_index(self.free, start), self.free.shape)
        if np.isfinite(self.distance.flat[here]):
            return int(here)
        routed = np.flatnonzero(np.isfinite(self.distance))
        points = np.stack(np.unravel_index(routed, self.free.shape), axis=1)
        gaps = np.linalg.norm(points * GRID_RESOLUTION - WALL_OFFSET - start, axis=1)
        nearest = np.argmin(gaps) if len(routed) else None
        return None if nearest is None or gaps[nearest] > snap else int(routed[nearest])

    def path(self, start: np.ndarray, snap: float = 0.0) -> np.ndarray:
        """``[K, 2]`` grid points from the :meth:`entry` of ``start`` to the goal; ``[0, 2]``
        when no route connects them."""
        here = self.entry(start, snap)
        if here is None:
            return np.zeros((0, 2))
        visited = [here]
        while self.toward[visited[-1]] >= 0:
            visited.append(self.toward[visited[-1]])
        cells = np.stack(np.unravel_index(visited, self.free.shape), axis=1)
        return cells * GRID_RESOLUTION - WALL_OFFSET

    def target(self, start: np.ndarray, goal: np.ndarray, reach: float) -> np.ndarray:
        """``[2]`` the point ``reach`` metres along the route from ``start`` to ``goal``; the
        goal itself when it is within reach (``start`` on the goal's grid point included) or no
        route connects them."""
        path = self.path(start)
        lengths = np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))
        if len(path) < 2 or lengths[-1] <= reach:
            return np.asarray(goal, float)
        return path[1 + np.searchsorted(lengths, reach)]


def routes_to(task: MazeTask, goal: np.ndarray, terms: Sequence[Term], layout: Layout) -> Routes:
    """:class:`Routes` to ``goal`` [2] around the maze's walls and the obstacle and bounds
    ``terms`` (Dijkstra on the free grid), for the centre of the point mass: at least its
    radius from the walls."""
    free = free_grid(task, terms, layout, POINT_RADIUS + GRID_RESOLUTION / 2)
    index = np.arange(free.size).reshape(free.shape)
    sources, targets, lengths = [], [], []
    for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
        here = (slice(0, free.shape[0] - di), slice(max(0, -dj), free.shape[1] - max(0, dj)))
        there = (slice(di, None), slice(max(0, dj), free.shape[1] + min(0, dj)))
        both = free[here] & free[there]
        sources.append(index[here][both])
        targets.append(index[there][both])
        lengths.append(np.full(both.sum(), GRID_RESOLUTION * np.hypot(di, dj)))
    graph = sparse.coo_matrix(
        (np.concatenate(lengths), (np.concatenate(sources), np.concatenate(targets))),
        shape=(free.size, free.size),
    ).tocsr()
    goal_index = np.ravel_multi_index(grid_index(free, goal), free.shape)
    if not free.flat[goal_index]:
        empty = np.full(free.size, np.inf)
        return Routes(free, empty.reshape(free.shape), np.full(free.size, -9999))
    distance, toward = csgraph.dijkstra(
        graph, directed=False, indices=goal_index, return_predecessors=True
    )
    return Routes(free, distance.reshape(free.shape), toward)


def segment_points(positions: np.ndarray, samples: int = SEGMENT_SAMPLES) -> np.ndarray:
    """``[..., H - 1, samples, P]`` points evenly along each step of ``positions`` [..., H, P]
    (both ends included)."""
    fractions = np.linspace(0.0, 1.0, samples)[:, None]
    start, end = positions[..., :-1, None, :], positions[..., 1:, None, :]
    return start + fractions * (end - start)


def within_limits(
    task: MazeTask, positions: np.ndarray, terms: Sequence[Term], layout: Layout
) -> np.ndarray:
    """``[Q]`` bool: which paths ``positions`` [Q, S, 2] the point mass can follow step by step:
    no step longer than the speed limit allows (0.05 m) and no step through a wall or through
    an obstacle or bounds term. Stricter than :func:`executability`'s jumps, which allow twice
    the limit."""
    too_fast = (np.linalg.norm(np.diff(positions, axis=1), axis=-1) > LIMIT_STEP).any(axis=1)
    points = segment_points(positions)  # [Q, S - 1, samples, 2]
    through_walls = inside_walls(task, points).any(axis=(1, 2))
    blocked = blocked_positions(terms, points.reshape(-1, points.shape[-1]), layout)
    return ~(too_fast | through_walls | blocked.reshape(len(positions), -1).any(axis=1))


def executability(
    task: MazeTask,
    positions: np.ndarray,
    goal: np.ndarray,
    terms: Sequence[Term] = (),
    layout: Layout | None = None,
    pursued: bool = False,
) -> dict:
    """What the simulator would say of a plan with ``positions`` [H, 2] (one row per
    environment step, a jumpy plan's interpolation included): the steps whose segment crosses a
    wall or (with ``terms`` and ``layout``) an obstacle or bounds term, the steps longer than
    ``JUMP_FACTOR`` × the speed limit's distance, and whether it reaches ``goal`` [2] by motion
    rather than by an imposed last row. Tracked in time (``pursued`` false) a long step is a
    jump the agent cannot make; pursued along its path (``eval.lookahead``) the agent follows
    it at the pursuit's own speed, so long steps are counted but do not make a plan
    unexecutable."""
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    fast = np.flatnonzero(steps > JUMP_FACTOR * LIMIT_STEP)
    jumps = [] if pursued else fast
    points = segment_points(positions)
    through_walls = inside_walls(task, points).any(axis=1)
    through_obstacles = np.zeros(len(steps), bool)
    if layout is not None:
        blocked = blocked_positions(terms, points.reshape(-1, points.shape[-1]), layout)
        through_obstacles = blocked.reshape(points.shape[:2]).any(axis=1)
    executable = not (len(jumps) or through_walls.any() or through_obstacles.any())
    return {
        "executable": bool(executable),
        "followed_by": "path pursuit" if pursued else "tracking in time",
        "max_step_length": round(float(steps.max()), 3),
        "fast_steps": len(fast),
        "jumps": [
            {
                "step": int(i),
                "from": _rounded(positions[i]),
                "to": _rounded(positions[i + 1]),
                "length": round(float(steps[i]), 2),
            }
            for i in jumps
        ],
        "steps_through_walls": int(through_walls.sum()),
        "steps_through_obstacles": int(through_obstacles.sum()),
        "reaches_goal_by_motion": bool(
            executable and np.linalg.norm(positions[-1] - goal) <= GOAL_RADIUS
        ),
    }


def _rounded(point: np.ndarray) -> list[float]:
    """``point`` as plain floats to two decimals (float32's ``round`` prints 0.6200000047)."""
    return [round(float(value), 2) for value in point]


def executability_text(report: dict) -> str:
    """One line for people: ``executable`` or what makes the plan not executable."""
    if report["executable"]:
        if report["fast_steps"] and report["followed_by"] == "path pursuit":
            return (
                f"executable by path pursuit: no step through a wall or obstacle "
                f"({report['fast_steps']} step(s) faster than the speed limit, followed at the "
                f"pursuit's speed)"
            )
        return "executable: no jumps, no step through a wall or obstacle"
    problems = []
    if report["jumps"]:
        largest = max(report["jumps"], key=lambda jump: jump["length"])
        problems.append(
            f"{len(report['jumps'])} jump(s), the largest {largest['length']} m at step "
            f"{largest['step']} from {largest['from']} to {largest['to']}"
        )
    if report["steps_through_walls"]:
        problems.append(f"{report['steps_through_walls']} step(s) through walls")
    if report["steps_through_obstacles"]:
        problems.append(f"{report['steps_through_obstacles']} step(s) through obstacles")
    return "NOT EXECUTABLE: " + "; ".join(problems)
