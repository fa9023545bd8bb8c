"""Maze2D checks around a plan: points inside walls, plans through walls, blocked routes."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from planner.energies.base import Term, term
from planner.energies.terms import CONSTRAINT_DEFAULTS, Layout
from planner.envs.maze2d import MazeTask, wall_rectangles
from planner.errors import PlannerError

GRID_RESOLUTION = 0.05  # metres per cell of the blocked-route check


class PlanRequestError(PlannerError, ValueError):
    """A start, goal or constraint set that no plan can satisfy."""


def inside_walls(task: MazeTask, positions: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """``[...]`` bool: which positions ``[..., 2]`` (D4RL frame) lie inside a wall cell grown
    by ``margin``."""
    rectangles = wall_rectangles(task)
    p = np.asarray(positions)[..., None, :]
    inside = (p >= rectangles[:, :2] - margin) & (p <= rectangles[:, 2:] + margin)
    return inside.all(axis=-1).any(axis=-1)


def _wall_depth(positions: jax.Array, data: dict) -> jax.Array:
    """``[H, W]`` how far each position is inside each wall rectangle (negative outside)."""
    p = positions[:, None, :]
    return jnp.min(jnp.minimum(p - data["low"], data["high"] - p), axis=-1)


def _wall_energy(positions: jax.Array, t: jax.Array, data: dict) -> jax.Array:
    return jnp.sum(jax.nn.relu(_wall_depth(positions, data) + data["margin"]) ** 2)


def _wall_violation(positions: jax.Array, data: dict) -> jax.Array:
    return jnp.max(jax.nn.relu(_wall_depth(positions, data)))


def walls_term(task: MazeTask, layout: Layout, guide: bool, margin: float = 0.0) -> Term:
    """The maze's walls as one hard constraint. With ``guide`` False the term only scores
    candidates (no guidance steps), so a plan through a wall is never the one chosen."""
    rectangles = wall_rectangles(task)
    data = {
        "low": jnp.asarray(rectangles[:, :2], jnp.float32),
        "high": jnp.asarray(rectangles[:, 2:], jnp.float32),
        "margin": jnp.float32(margin),
    }
    guidance = (
        dict(CONSTRAINT_DEFAULTS)
        if guide
        else {"weight": CONSTRAINT_DEFAULTS["weight"], "n_guide_steps": 0}
    )
    return term(
        _wall_energy, "walls", data=data, columns=layout.position_columns,
        violation=_wall_violation, **guidance,
    )  # fmt: skip


def check_point(task: MazeTask, point: Sequence[float], name: str) -> None:
    """Refuse a ``name`` point outside the maze or inside one of its walls."""
    point = np.asarray(point, float)
    rows, cols = task.walls.shape
    low, high = np.array([-0.7, -0.7]), np.array([rows - 0.7, cols - 0.7])
    if np.any(point < low) or np.any(point > high):
        raise PlanRequestError(
            f"{name} {point.tolist()} is outside the {task.name} maze "
            f"(x in [{low[0]}, {high[0]}], y in [{low[1]}, {high[1]}])"
        )
    if inside_walls(task, point):
        cell = np.floor(point + 0.7).astype(int).tolist()
        raise PlanRequestError(
            f"{name} {point.tolist()} is inside the wall cell {cell} of {task.name}"
        )


def blocked_positions(
    terms: Sequence[Term], positions: np.ndarray, layout_dim: int, columns
) -> np.ndarray:
    """``[N]`` bool: positions ``[N, 2]`` that violate an obstacle or bounds term when visited."""
    rows = np.zeros((len(positions), 1, layout_dim), np.float32)
    rows[:, 0, list(columns)] = positions
    blocked = np.zeros(len(positions), bool)
    for obstacle in terms:
        if obstacle.name in ("circle", "box", "bounds"):
            blocked |= np.asarray(jax.vmap(obstacle.violation_of)(jnp.asarray(rows))) > 0
    return blocked


def route_exists(
    task: MazeTask,
    start: np.ndarray,
    goal: np.ndarray,
    terms: Sequence[Term],
    layout_dim: int,
    columns,
) -> bool:
    """Whether free space (no wall, no obstacle, within bounds) connects ``start`` and ``goal``,
    on a grid of ``GRID_RESOLUTION``."""
    rows, cols = task.walls.shape
    xs = np.arange(-0.7, rows - 0.7, GRID_RESOLUTION)
    ys = np.arange(-0.7, cols - 0.7, GRID_RESOLUTION)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    # walls grown by half a grid cell, so a gap of zero width between an obstacle and a wall
    # does not count as a route
    free = ~inside_walls(task, grid, GRID_RESOLUTION / 2) & ~blocked_positions(
        terms, grid, layout_dim, columns
    )
    labels, _ = ndimage.label(free.reshape(len(xs), len(ys)))

    def label_of(point: np.ndarray) -> int:
        i = int(np.clip(np.round((point[0] + 0.7) / GRID_RESOLUTION), 0, len(xs) - 1))
        j = int(np.clip(np.round((point[1] + 0.7) / GRID_RESOLUTION), 0, len(ys) - 1))
        return int(labels[i, j])

    start_label, goal_label = label_of(start), label_of(goal)
    return start_label != 0 and start_label == goal_label
