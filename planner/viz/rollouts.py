"""Figures of evaluation episodes: Maze2D plans and paths, locomotion return curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from planner.tasks.maze2d import MazeTask
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


def plot_return_curves(
    path: str | Path, title: str, rewards: np.ndarray, lengths: np.ndarray
) -> Path:
    """Cumulative reward against step of every episode (``rewards`` [N, T], ``lengths`` [N]),
    each drawn until its episode ended (a cross where it fell before the time limit)."""
    figure, ax = plt.subplots(figsize=(6.4, 4.0))
    cumulative = np.cumsum(rewards, axis=1)
    for curve, length in zip(cumulative, lengths, strict=True):
        ax.plot(np.arange(1, length + 1), curve[:length], color="tab:blue", alpha=0.35, lw=1)
        if length < rewards.shape[1]:
            ax.plot(length, curve[length - 1], "x", color="tab:red", ms=5)
    ax.set_xlabel("environment step")
    ax.set_ylabel("return so far")
    ax.set_title(f"{title}: {len(lengths)} episodes (x: fell)")
    return save_figure(figure, path)
