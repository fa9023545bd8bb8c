"""Behaviour cloning: an MLP from a normalized observation to a normalized action.

The baseline every locomotion row is compared with: trained by ``planner train-bc`` on the same
windows (their first rows) and normalizer as the diffusion model, evaluated in the same loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


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
