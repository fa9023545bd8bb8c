"""Where datasets and runs live on disk. Nothing here downloads anything."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(override: str | Path | None = None) -> Path:
    """Directory of regenerated datasets: ``override``, else ``$PLANNER_DATA_DIR``, else
    ``$XDG_CACHE_HOME/planner`` (``~/.cache/planner``)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("PLANNER_DATA_DIR"):
        return Path(os.environ["PLANNER_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "planner"


def d4rl_dir() -> Path:
    """D4RL's own download cache: ``$D4RL_DATASET_DIR``, else ``~/.d4rl/datasets``."""
    return Path(os.environ.get("D4RL_DATASET_DIR") or Path.home() / ".d4rl" / "datasets")


# A config's runs sit side by side: the diffusion run ``DIR``, its value model ``DIR-value``
# (where a ``{run}-value`` objective looks), its behaviour-cloning baseline ``DIR-bc`` and its
# inverse-dynamics model ``DIR-invdyn`` (where ``plan.inverse_dynamics: '{run}-invdyn'`` looks);
# `planner train-goal-value` writes ``DIR-goalvalue`` (where ``eval.subgoal_value`` looks).
RUN_SUFFIXES = {"diffusion": "", "value": "-value", "bc": "-bc", "invdyn": "-invdyn"}
