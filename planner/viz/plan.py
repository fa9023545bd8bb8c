"""Figures of plans: candidates and the chosen plan over the maze, with obstacles and regions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Rectangle

from planner.energies.base import Term
from planner.tasks.maze2d import MazeTask
from planner.viz.figures import fit_text, save_figure
from planner.viz.maze import draw_maze

FIGURE_INCHES = 5.5
TRACE_INCHES = 2.2  # one observation panel of plot_plan_traces
TITLE_POINTS = 9


def draw_terms(ax: Axes, terms: Sequence[Term]) -> None:
    """Obstacles filled red, pass-through regions dashed green, in (y, x) plot coordinates."""
    for term in terms:
        data = term.data if isinstance(term.data, dict) else {}
        obstacle = term.name in ("circle", "box")
        style = (
            {"color": "tab:red", "alpha": 0.45}
            if obstacle
            else {"fill": False, "edgecolor": "tab:green", "linestyle": "--", "linewidth": 2}
        )
        if "center" in data and "radius" in data:
            x, y = np.asarray(data["center"])
            ax.add_patch(Circle((y, x), float(data["radius"]), **style))
        elif term.name in ("box", "pass_through_box"):
            lows, highs = np.reshape(data["low"], (-1, 2)), np.reshape(data["high"], (-1, 2))
            for (x0, y0), (x1, y1) in zip(lows, highs, strict=True):
                ax.add_patch(Rectangle((y0, x0), y1 - y0, x1 - x0, **style))


def plot_plan(
    path: str | Path,
    task: MazeTask,
    candidates: np.ndarray,
    best: int,
    terms: Sequence[Term] = (),
    title: str = "",
    jump: int = 1,
) -> Path:
    """PNG of candidate position paths ``[N, H, 2]`` (grey) and the chosen one (coloured by
    time), with the start (circle), the goal (star) and the terms' regions. A jumpy model's
    plan (``jump > 1``) shows both levels: its subgoals (every ``jump``-th row, ringed) and the
    steps between them."""
    figure, ax = plt.subplots(figsize=(FIGURE_INCHES, FIGURE_INCHES))
    draw_maze(ax, task)
    draw_terms(ax, terms)
    for index, candidate in enumerate(candidates):
        if index != best:
            ax.plot(candidate[:, 1], candidate[:, 0], color="0.6", lw=0.8, alpha=0.7)
    chosen = candidates[best]
    ax.scatter(chosen[:, 1], chosen[:, 0], c=np.arange(len(chosen)), cmap="viridis", s=8, zorder=3)
    if jump > 1:
        knots = chosen[::jump]
        ax.scatter(
            knots[:, 1], knots[:, 0], s=60, facecolors="none", edgecolors="k", linewidths=1.2,
            zorder=4, label=f"subgoals (every {jump} steps)",
        )  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
    ax.plot(chosen[0, 1], chosen[0, 0], "o", color="tab:blue", markersize=10, markeredgecolor="k")
    ax.plot(
        chosen[-1, 1], chosen[-1, 0], "*", color="tab:orange", markersize=16, markeredgecolor="k"
    )
    ax.set_title(fit_text(title, FIGURE_INCHES, TITLE_POINTS), fontsize=TITLE_POINTS)
    return save_figure(figure, path)


def plot_plan_traces(
    path: str | Path, candidates: np.ndarray, best: int, title: str = "", columns: int = 4
) -> Path:
    """PNG of planned observations ``[N, H, O]`` over the plan's steps, one panel per
    observation dimension: every candidate in grey, the chosen one (index ``best``) in
    colour."""
    dims = candidates.shape[-1]
    rows = -(-dims // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(TRACE_INCHES * columns, 0.8 * TRACE_INCHES * rows), squeeze=False
    )
    steps = np.arange(candidates.shape[1])
    for dim, ax in enumerate(axes.flat):
        if dim >= dims:
            ax.axis("off")
            continue
        for index, candidate in enumerate(candidates):
            if index != best:
                ax.plot(steps, candidate[:, dim], color="0.6", lw=0.8, alpha=0.7)
        ax.plot(steps, candidates[best, :, dim], color="tab:blue", lw=1.6)
        ax.set_title(f"observation {dim}", fontsize=8)
        ax.tick_params(labelsize=7)
    figure.suptitle(fit_text(title, TRACE_INCHES * columns, TITLE_POINTS), fontsize=TITLE_POINTS)
    return save_figure(figure, path)
