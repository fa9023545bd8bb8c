"""Scores of evaluated episodes: returns, success, time to goal and normalized scores."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from planner.eval.rollouts import Rollouts
from planner.tasks.base import normalized_score
from planner.tasks.maze2d import MazeTask


def mean_and_stderr(values: np.ndarray) -> dict[str, float]:
    """``{"mean", "stderr"}`` of ``values`` [N]; the standard error is ``std (ddof 1) / √N``
    (0 for a single value)."""
    values = np.asarray(values, np.float64)
    stderr = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "stderr": float(stderr)}


def score_summary(
    rollouts: Rollouts, task: MazeTask, references: dict[str, Any] | None
) -> dict[str, Any]:
    """Returns, success rate, time to goal, infeasible episodes (no route from start to goal),
    replans and policy seconds per episode, and
    normalized scores under D4RL's references and, if given, the references recomputed on this
    simulator (``{"ref_min", "ref_max"}``)."""
    returns = rollouts.returns
    reached = rollouts.time_to_goal[rollouts.success]
    summary: dict[str, Any] = {
        "episodes": len(returns),
        "return": mean_and_stderr(returns),
        "success_rate": float(rollouts.success.mean()),
        "time_to_goal": mean_and_stderr(reached) if len(reached) else None,
        "infeasible_episodes": int((~rollouts.feasible).sum()),
        "replans_per_episode": mean_and_stderr(rollouts.replans),
        "policy_seconds_per_episode": mean_and_stderr(rollouts.policy_seconds),
        "normalized_d4rl": mean_and_stderr(task.normalized(returns)),
    }
    if references is not None:
        ours = normalized_score(returns, references["ref_min"], references["ref_max"])
        summary["normalized_this_simulator"] = mean_and_stderr(ours)
        summary["references_this_simulator"] = {
            key: references[key] for key in ("ref_min", "ref_max")
        }
    return summary
