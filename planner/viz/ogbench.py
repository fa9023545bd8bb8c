"""Figures of OGBench maze episodes, in OGBench's own coordinates (x right, y up)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from planner.tasks.ogbench import OGBenchMazeTask, wall_rectangles
from planner.viz.figures import save_figure


def plot_maze_episodes(
    path: str | Path,
    task: OGBenchMazeTask,
    plans: np.ndarray,
    paths: np.ndarray,
    goals: np.ndarray,
    titles: list[str],
    columns: int = 5,
) -> Path:
    """One panel per episode: the first plan's positions ``plans`` [N, H, 2] dashed (none when
    ``H`` is 0), the positions ``paths`` [N, T + 1, 2] solid, start (circle), goal ``goals``
    [N, 2] (cross), ``titles`` [N] above."""
    count = len(paths)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    walls = wall_rectangles(task.maze)
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.axis("off")
            continue
        for x_min, y_min, x_max, y_max in walls:
            ax.add_patch(
                Rectangle((x_min, y_min), x_max - x_min, y_max - y_min, color="0.35", lw=0)
            )
        if plans.shape[1]:
            ax.plot(plans[index, :, 0], plans[index, :, 1], "--", color="tab:blue", lw=1.2)
        ax.plot(paths[index, :, 0], paths[index, :, 1], color="tab:orange", lw=1.2)
        ax.plot(*paths[index, 0], "o", color="tab:green", ms=6)
        ax.plot(*goals[index], "x", color="tab:red", ms=9, mew=3)
        ax.autoscale_view()
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[index], fontsize=9)
    figure.suptitle(f"{task.name}: first plan (dashed) and episode (solid)")
    return save_figure(figure, path)
