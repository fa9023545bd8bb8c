"""Figures of composition scenarios: layouts × methods, with plans, paths and obstacles drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Rectangle

from planner.tasks.maze2d import MazeTask, Obstacle
from planner.viz.figures import fit_text, save_figure
from planner.viz.maze import draw_maze

PANEL_INCHES = 3.3
SUPTITLE_POINTS = 12  # matplotlib's default suptitle size, "large"


def draw_region(ax: Axes, spec: Mapping[str, Any], **style) -> None:
    """A circle (``center``, ``radius``) or box (``low``, ``high``) region of a term spec, in the
    maze figures' axes (D4RL ``y`` across, ``x`` down)."""
    if "center" in spec:
        x, y = spec["center"]
        ax.add_patch(Circle((y, x), spec["radius"], **style))
    else:
        (x0, y0), (x1, y1) = spec["low"], spec["high"]
        ax.add_patch(Rectangle((y0, x0), y1 - y0, x1 - x0, **style))


def plot_scenario(
    path: str | Path,
    task: MazeTask,
    record: Mapping[str, Any],
    rollouts: Mapping[tuple[str, str], Any],
    regions: Sequence[Mapping[str, Any]] = (),
    shown: int = 6,
    position_columns: Sequence[int] = (2, 3),
) -> Path:
    """One panel per layout (row) and method (column): the first ``shown`` episodes' plans
    (dashed) and executed paths (solid), obstacles in red, ``regions`` (e.g. a preferred
    corridor) outlined in green, the start marked by a circle (by a cross, and no plan drawn,
    for an episode reported infeasible and held at its start); for attribute layouts the
    required attributes' boxes outlined in green and the excluded ones in red. ``rollouts``
    maps (layout, method) to episodes with ``observations`` [E, T, O], ``first_plans``
    [E, H, D], ``feasible`` [E] and ``returns`` [E] (``planner.eval.rollouts.Rollouts``)."""
    attributes = {spec["name"]: spec for spec in record.get("attributes", ())}
    layouts = [layout["name"] for layout in record["layouts"]]
    methods = list(dict.fromkeys(row["method"] for row in record["rows"]))
    figure, axes = plt.subplots(
        len(layouts), len(methods),
        figsize=(PANEL_INCHES * len(methods), PANEL_INCHES * len(layouts)),
        squeeze=False,
    )  # fmt: skip
    colours = plt.cm.tab10.colors
    for layout, row_axes in zip(record["layouts"], axes, strict=True):
        for method, ax in zip(methods, row_axes, strict=True):
            draw_maze(ax, task)
            for spec in layout["obstacles"]:
                Obstacle.from_spec(spec)  # a drawable obstacle
                draw_region(ax, spec, color="tab:red", alpha=0.8, lw=0)
            for spec in regions:
                draw_region(ax, spec, fill=False, color="tab:green", lw=1.5, ls="--")
            for names, colour in ((layout.get("require", ()), "tab:green"),
                                  (layout.get("exclude", ()), "tab:red")):  # fmt: skip
                for name in names:
                    draw_region(ax, attributes[name], fill=False, color=colour, lw=2, ls=":")
            result = rollouts[(layout["name"], method)]
            for index in range(min(shown, len(result.returns))):
                colour = colours[index % len(colours)]
                path_xy = result.observations[index][:, :2]
                if result.feasible[index]:  # a held episode's plan was never executed
                    plan = result.first_plans[index][:, list(position_columns)]
                    ax.plot(plan[:, 1], plan[:, 0], "--", color=colour, lw=1.0)
                ax.plot(path_xy[:, 1], path_xy[:, 0], "-", color=colour, lw=1.6, alpha=0.8)
                marker = "o" if result.feasible[index] else "x"
                ax.plot(path_xy[0, 1], path_xy[0, 0], marker, color=colour, ms=4)
            row = next(
                r for r in record["rows"] if (r["layout"], r["method"]) == (layout["name"], method)
            )
            if "specification_plan_rate" in row:
                outcome = (f"holds: plans {row['specification_plan_rate']:.0%}, "
                           f"paths {row['specification_path_rate']:.0%}")  # fmt: skip
            else:
                outcome = (f"clean success {row['clean_success_rate']:.0%}, "
                           f"collisions {row['collision_rate']:.1%}")  # fmt: skip
            if not result.feasible[:shown].all():
                outcome += "\nx: reported infeasible, held (plan not drawn)"
            heading = fit_text(f"{layout['name']} / {method}", PANEL_INCHES, 8)
            ax.set_title(f"{heading}\n{outcome}", fontsize=8)
            ax.set_xlabel("")
            ax.set_ylabel("")
    title = f"{record['title']}: plans (dashed) and executed paths (solid)"
    figure.suptitle(
        fit_text(title, PANEL_INCHES * len(methods), SUPTITLE_POINTS), fontsize=SUPTITLE_POINTS
    )
    return save_figure(figure, path)
