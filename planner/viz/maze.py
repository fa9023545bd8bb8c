"""Figures of Maze2D layouts and datasets, drawn in the D4RL frame.

Plots put the D4RL ``y`` (layout column) on the horizontal axis and ``x`` (layout row) on the
vertical axis pointing down, so a figure looks like the layout string it came from.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from planner.data.episodes import Episodes, summarize
from planner.tasks.maze2d import MazeTask, wall_rectangles
from planner.viz.figures import save_figure


def draw_maze(ax: Axes, task: MazeTask) -> None:
    """Walls as grey cells and the evaluation goal as a star, axes in D4RL coordinates."""
    for x_min, y_min, x_max, y_max in wall_rectangles(task):
        ax.add_patch(Rectangle((y_min, x_min), y_max - y_min, x_max - x_min, color="0.35", lw=0))
    goal = task.eval_goal
    ax.plot(goal[1], goal[0], marker="*", color="gold", markersize=14, markeredgecolor="k")
    rows, cols = task.walls.shape
    ax.set_xlim(-0.7, cols - 0.7)
    ax.set_ylim(rows - 0.7, -0.7)
    ax.set_aspect("equal")
    ax.set_xlabel("y (D4RL)")
    ax.set_ylabel("x (D4RL)")


def plot_dataset(episodes: Episodes, path: str | Path, task: MazeTask | None = None) -> Path:
    """PNG with the coverage of positions over the maze (Maze2D) or of the first two observation
    dimensions, plus histograms of episode lengths and returns."""
    figure, (coverage, lengths, returns) = plt.subplots(1, 3, figsize=(15, 4.6))
    observations = episodes.observations
    if task is not None:
        rows, cols = task.walls.shape
        bins = (np.linspace(-0.7, cols - 0.7, 20 * cols), np.linspace(-0.7, rows - 0.7, 20 * rows))
        image = coverage.hist2d(
            observations[:, 1],
            observations[:, 0],
            bins=bins,
            cmap="viridis",
            cmin=1,
            norm=matplotlib.colors.LogNorm(),
        )[3]
        draw_maze(coverage, task)
        coverage.set_title(f"positions visited ({episodes.n_steps:,} steps)")
    else:
        image = coverage.hexbin(observations[:, 0], observations[:, 1], bins="log", cmap="viridis")
        coverage.set_xlabel("observation[0]")
        coverage.set_ylabel("observation[1]")
        coverage.set_title("coverage of the first two observation dimensions")
    figure.colorbar(image, ax=coverage, label="steps")
    stats = summarize(episodes)
    lengths.hist(episodes.episode_lengths, bins=60, color="tab:blue")
    lengths.set_title(
        f"{stats['episodes']:,} episodes, mean length {stats['episode_length']['mean']:.1f}"
    )
    lengths.set_xlabel("episode length (steps)")
    returns.hist(episodes.episode_returns, bins=60, color="tab:orange")
    returns.set_title(f"mean return {stats['episode_return']['mean']:.2f}")
    returns.set_xlabel("episode return")
    figure.suptitle(episodes.name)
    return save_figure(figure, path)
