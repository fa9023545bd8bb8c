"""The MLP action models: behaviour cloning and inverse dynamics.

Behaviour cloning is the baseline every locomotion row is compared with: trained by
``planner train-bc`` on the same windows (their first rows) and normalizer as the diffusion
model, evaluated in the same loop. Inverse dynamics (``planner train-invdyn``, Decision
Diffuser's action head) gives the action that takes one observation to the next; a planner with
``plan.inverse_dynamics`` executes the action leading to its plan's next observation instead of
the plan's own action.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class BehaviourCloning(nn.Module):
    """``(observations [B, O]) -> actions [B, A]``, both normalized."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        h = observations
        for features in self.hidden:
            h = nn.relu(nn.Dense(features)(h))
        return nn.Dense(self.action_dim)(h)


class InverseDynamics(nn.Module):
    """``(observations [B, O], next_observations [B, O]) -> actions [B, A]``, all normalized:
    the same MLP as :class:`BehaviourCloning` on the two observations side by side."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array, next_observations: jax.Array) -> jax.Array:
        pair = jnp.concatenate([observations, next_observations], axis=-1)
        return BehaviourCloning(self.action_dim, self.hidden)(pair)
