"""What every task family shares: D4RL's score normalization and file names for task names."""

from __future__ import annotations

import numpy as np


def normalized_score(returns: np.ndarray | float, ref_min: float, ref_max: float) -> np.ndarray:
    """D4RL normalized score ``100 * (return - ref_min) / (ref_max - ref_min)``."""
    return 100.0 * (np.asarray(returns) - ref_min) / (ref_max - ref_min)


def file_stem(name: str) -> str:
    """``name`` with the characters a file name cannot hold (``/``, ``:``) replaced by ``_``."""
    return name.replace("/", "_").replace(":", "_")
