"""Training-curve figure from a run's ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from planner.viz.figures import save_figure


def plot_training_curve(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss (log scale) against step; ``None`` if there are no rows yet."""
    metrics_path, png_path = Path(metrics_path), Path(png_path)
    if not metrics_path.is_file():
        return None
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    steps = [row["step"] for row in rows]
    axis.plot(steps, [row["loss"] for row in rows], label="loss")
    if "first_action_loss" in rows[0]:
        axis.plot(
            steps, [row["first_action_loss"] for row in rows], label="first-action loss", alpha=0.7
        )
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(f"{metrics_path.parent.name}: {rows[-1]['steps_per_second']:.1f} steps/s")
    axis.legend()
    return save_figure(figure, png_path)
