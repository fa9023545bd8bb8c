"""The cosine noise schedule and the forward (noising) process.

Noise level ``t`` runs over ``0 .. T-1``; ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Schedule:
    """Per-level coefficients, each ``[T]`` float32."""

    betas: jax.Array
    alphas_cumprod: jax.Array

    @property
    def n_steps(self) -> int:
        return self.betas.shape[0]

    @property
    def sqrt_alphas_cumprod(self) -> jax.Array:
        return jnp.sqrt(self.alphas_cumprod)

    @property
    def sqrt_one_minus_alphas_cumprod(self) -> jax.Array:
        return jnp.sqrt(1.0 - self.alphas_cumprod)


def cosine_schedule(n_steps: int, offset: float = 0.008) -> Schedule:
    """Nichol & Dhariwal's cosine schedule with betas clipped to 0.999 (Diffuser's choice)."""
    x = np.linspace(0, n_steps, n_steps + 1, dtype=np.float64)
    alphas_cumprod = np.cos(((x / n_steps) + offset) / (1 + offset) * np.pi / 2) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = np.clip(1 - alphas_cumprod[1:] / alphas_cumprod[:-1], 0.0, 0.999)
    return Schedule(
        betas=jnp.asarray(betas, jnp.float32),
        alphas_cumprod=jnp.asarray(np.cumprod(1.0 - betas), jnp.float32),
    )


def _per_sample(values: jax.Array, t: jax.Array) -> jax.Array:
    """``values[t]`` for ``t [B]``, shaped ``[B, 1, 1]`` to broadcast over ``[B, H, D]``."""
    return values[t][:, None, None]


def add_noise(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """``x_t`` [B, H, D] from clean ``x0`` [B, H, D], levels ``t`` [B] and ``noise`` [B, H, D]."""
    return (
        _per_sample(schedule.sqrt_alphas_cumprod, t) * x0
        + _per_sample(schedule.sqrt_one_minus_alphas_cumprod, t) * noise
    )


def start_from_noise(
    schedule: Schedule, x_t: jax.Array, t: jax.Array, noise: jax.Array
) -> jax.Array:
    """The clean trajectory implied by ``x_t`` and a noise estimate (inverse of ``add_noise``)."""
    return (x_t - _per_sample(schedule.sqrt_one_minus_alphas_cumprod, t) * noise) / _per_sample(
        schedule.sqrt_alphas_cumprod, t
    )
