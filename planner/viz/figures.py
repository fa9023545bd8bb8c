"""Writing figures: one place for layout, resolution and closing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DPI = 110


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Lay out ``figure``, write it as a PNG at ``path`` (creating its directory), close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
