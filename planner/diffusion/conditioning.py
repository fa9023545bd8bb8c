"""Hard conditions as masks: ``x = where(mask, values, x)``.

Training imposes the same conditions on the noisy input as sampling does: the window's first
observation (unless the model is trained without it) and, when goal-conditioned, its last one.
Actions are never conditioned.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def endpoint_conditions(
    start: jax.Array,
    goal: jax.Array | None,
    horizon: int,
    action_dim: int,
    fix_start: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """``(mask [1, H, D], values [B, H, D])`` fixing the observation part of step 0 to ``start``
    [B, O] (if ``fix_start``) and, if ``goal`` [B, O] is given, of step ``H - 1`` to ``goal``."""
    batch, obs_dim = start.shape
    transition_dim = action_dim + obs_dim
    observed = jnp.arange(transition_dim) >= action_dim
    steps = jnp.arange(horizon)
    fixed_steps = (steps == 0) & fix_start
    if goal is not None:
        fixed_steps = fixed_steps | (steps == horizon - 1)
    mask = (fixed_steps[:, None] & observed[None, :])[None]
    values = jnp.zeros((batch, horizon, transition_dim), start.dtype)
    values = values.at[:, 0, action_dim:].set(start)
    if goal is not None:
        values = values.at[:, -1, action_dim:].set(goal)
    return mask, values


def impose(x: jax.Array, mask: jax.Array, values: jax.Array) -> jax.Array:
    """``x`` [B, H, D] with the masked entries replaced by ``values`` (exactly)."""
    return jnp.where(mask, values, x)
