"""Figures of evaluation episodes: each episode's first plan and the path the agent took."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from planner.envs.maze2d import MazeTask
from planner.viz.figures import save_figure
from planner.viz.maze import draw_maze


def plot_rollouts(
    path: str | Path,
    task: MazeTask,
    plans: np.ndarray,
    paths: np.ndarray,
    goals: np.ndarray,
    returns: np.ndarray,
    columns: int = 4,
) -> Path:
    """One panel per episode: the plan's positions ``plans`` [N, H, 2] dashed, the simulated
    positions ``paths`` [N, T + 1, 2] solid, start (circle) and goal ``goals`` [N, 2] (cross)."""
    count = len(plans)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.axis("off")
            continue
        draw_maze(ax, task)
        ax.plot(plans[index, :, 1], plans[index, :, 0], "--", color="tab:blue", lw=1.5)
        ax.plot(paths[index, :, 1], paths[index, :, 0], color="tab:orange", lw=1.5)
        ax.plot(paths[index, 0, 1], paths[index, 0, 0], "o", color="tab:green", ms=7)
        ax.plot(goals[index, 1], goals[index, 0], "x", color="tab:red", ms=10, mew=3)
        ax.set_title(f"episode {index}: return {returns[index]:.0f}", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
    figure.suptitle(f"{task.name}: plan (dashed) and rollout (solid)")
    return save_figure(figure, path)
