"""Writing figures: one place for layout, resolution and closing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DPI = 110
# A proportional font's average character is under 0.6 em wide (DejaVu Sans, measured on titles).
CHARACTER_WIDTH_EM = 0.6


def fit_text(text: str, inches: float, fontsize: float) -> str:
    """``text`` wrapped into lines that fit ``inches`` of width at ``fontsize`` points, so a
    title stays inside its figure or panel."""
    per_line = max(int(inches * 72 / (fontsize * CHARACTER_WIDTH_EM)), 10)
    return textwrap.fill(text, width=per_line)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Lay out ``figure``, write it as a PNG at ``path`` (creating its directory), close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
