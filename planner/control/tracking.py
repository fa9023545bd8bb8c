"""Low-level controllers: turn a plan (or a point to hold) into actions for a batch of episodes.

Diffuser's tracking controller ``action = (p[t+1] - pos) + (v[t+1] - vel)`` follows a plan's next
state in time: an agent that lags its plan is pulled straight toward where the plan is now, across
whatever the plan went around. The pursuit controller follows the plan's *path* instead: it heads
for the point a look-ahead distance further along the path from where the agent is, at the
plan's speed, so a lagging agent still turns where the plan turns. The hold controller
``action = (goal - pos) - vel`` brings the agent to a point at rest. All act on the observation's
position and velocity dimensions named by a :class:`Layout`.

A *position-controlled* body (OGBench's point mass: the position moves by ``step_size * action``
per step, no velocity in the observation) is driven by :func:`displacement_actions` toward the
same pursuit targets (:func:`pursuit_targets`).
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


def pursuit_targets(
    paths: np.ndarray,
    positions: np.ndarray,
    progress: np.ndarray,
    lookahead: float,
    window: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(targets [B], ending [B], progress [B])`` along ``paths`` [B, H, P] from ``positions``
    [B, P]: ``progress`` [B], the path row each agent has reached, advances to the nearest row
    among the next ``window`` and never goes back; the target is the first row after it at least
    ``lookahead`` away, or the last row (``ending``) where there is none."""
    horizon = paths.shape[1]
    distance = np.linalg.norm(paths - positions[:, None], axis=-1)  # [B, H]
    rows = np.arange(horizon)
    reachable = (rows >= progress[:, None]) & (rows <= progress[:, None] + window)
    progress = np.argmin(np.where(reachable, distance, np.inf), axis=1)  # never behind
    beyond = (rows > progress[:, None]) & (distance >= lookahead)
    ending = ~beyond.any(axis=1)
    return np.where(ending, horizon - 1, np.argmax(beyond, axis=1)), ending, progress


def pursuit_actions(
    states: np.ndarray,
    observations: np.ndarray,
    progress: np.ndarray,
    layout: Layout,
    lookahead: float,
    min_speed: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``([B, A] actions, [B] progress)`` pursuing the paths of plans ``states`` [B, H, O]
    (observations only) from ``observations`` [B, O] (:func:`pursuit_targets`): the action
    steers toward the target at the plan's speed there (at least ``min_speed``),
    ``action = v* - vel``. Within ``lookahead`` of the path's end the agent is brought to rest
    at its last position."""
    position, velocity = list(layout.position), list(layout.velocity)
    path, here = states[..., position], observations[:, position]
    target, ending, progress = pursuit_targets(path, here, progress, lookahead)
    episodes = np.arange(len(states))
    offset = path[episodes, target] - here
    direction = offset / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-6)
    planned_speed = np.linalg.norm(states[episodes, target][:, velocity], axis=1, keepdims=True)
    steering = np.maximum(planned_speed, min_speed) * direction - observations[:, velocity]
    resting = hold_actions(path[:, -1], observations, layout)
    return np.where(ending[:, None], resting, steering), progress


def displacement_actions(
    points: np.ndarray, observations: np.ndarray, layout: Layout, step_size: float
) -> np.ndarray:
    """``[B, A]`` actions of a position-controlled body (``position += step_size * action``,
    actions in ``[-1, 1]``) moving ``observations`` [B, O] toward ``points`` [B, P]: the whole
    way where one step reaches, else as far as the action's range allows."""
    offset = points - observations[:, list(layout.position)]
    return np.clip(offset / step_size, -1.0, 1.0)
