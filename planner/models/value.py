"""Value model: the U-Net's down path plus an MLP head, ``(x [B, H, D], t [B]) -> [B]``.

It predicts the discounted return-to-go of a noisy window at noise level ``t`` (Diffuser's value
function), so its gradient can guide sampling at every noise level.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from planner.models.unet import DownPath, ResidualTemporalBlock, TimeEmbedding, mish


class ValueNet(nn.Module):
    dim: int = 32
    dim_mults: Sequence[int] = (1, 2, 4, 8)
    kernel_size: int = 5
    attention: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
        time = TimeEmbedding(self.dim)(t)
        x, _ = DownPath(self.dim, self.dim_mults, self.kernel_size, self.attention)(x, time)
        middle = self.dim * self.dim_mults[-1]
        for features in (middle // 2, middle // 4):
            x = ResidualTemporalBlock(features, self.kernel_size)(x, time)
            x = nn.Conv(features, (3,), strides=(2,), padding=1)(x)
        h = jnp.concatenate([x.reshape(x.shape[0], -1), time], axis=-1)
        h = mish(nn.Dense(h.shape[-1] // 2)(h))
        return nn.Dense(1)(h)[:, 0]
