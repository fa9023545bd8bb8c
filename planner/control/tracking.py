"""Low-level controllers: turn a plan (or a point to hold) into actions for a batch of episodes.

Diffuser's tracking controller ``action = (p[t+1] - pos) + (v[t+1] - vel)`` follows a plan's next
state; the hold controller ``action = (goal - pos) - vel`` brings the agent to a point at rest. Both
act on the observation's position and velocity dimensions named by a :class:`Layout`.
"""

from __future__ import annotations

import numpy as np

from planner.energies.terms import Layout


def tracking_actions(
    states: np.ndarray, observations: np.ndarray, steps: np.ndarray | int, layout: Layout
) -> np.ndarray:
    """``[B, A]`` actions following plans ``states`` [B, H, O] (observations only) from
    ``observations`` [B, O] at plan step ``steps`` [B] (or one int for all). After the plan's
    last step the target is its last position at rest."""
    batch, horizon = states.shape[:2]
    following = np.broadcast_to(np.asarray(steps) + 1, (batch,))
    target = states[np.arange(batch), np.minimum(following, horizon - 1)]
    position, velocity = list(layout.position), list(layout.velocity)
    target_velocity = np.where((following >= horizon)[:, None], 0.0, target[:, velocity])
    position_error = target[:, position] - observations[:, position]
    return position_error + target_velocity - observations[:, velocity]


def hold_actions(points: np.ndarray, observations: np.ndarray, layout: Layout) -> np.ndarray:
    """``[B, A]`` actions bringing ``observations`` [B, O] to rest at ``points`` [B, P]."""
    position, velocity = list(layout.position), list(layout.velocity)
    return points - observations[:, position] - observations[:, velocity]
