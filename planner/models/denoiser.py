"""One interface over both parameterizations: ``predict(params, x [B, H, D], t [B]) -> [B, H, D]``.

- ``score``: the U-Net output is the prediction (the noise, or the clean trajectory).
- ``energy``: the U-Net ``f`` defines a scalar energy per trajectory, ``E = ½‖f(x, t)‖²``
  (``norm``) or ``E = ½‖f(x, t) − x‖²`` (``residual``), and the noise prediction is ``∇ₓE``.
  Energies can be added, mixed and Metropolis-tested at plan time; plain scores only added.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from planner.config import Config
from planner.models.unet import TemporalUnet

PredictFn = Callable[[dict, jax.Array, jax.Array], jax.Array]
EnergyFn = Callable[[dict, jax.Array, jax.Array], jax.Array]


def make_unet(config: Config, transition_dim: int) -> TemporalUnet:
    model = config.model
    return TemporalUnet(
        transition_dim=transition_dim,
        dim=model.dim,
        dim_mults=model.dim_mults,
        kernel_size=model.kernel_size,
        attention=model.attention,
        n_attributes=len(config.data.attributes),
    )


def make_energy_fn(unet: TemporalUnet, energy_form: str) -> EnergyFn:
    """``energy(params, x [B, H, D], t [B], *condition) -> [B]`` from the network output
    (``condition``: an attribute-conditioned network's attribute [B])."""

    def energy(params: dict, x: jax.Array, t: jax.Array, *condition) -> jax.Array:
        output = unet.apply(params, x, t, *condition)
        residual = output - x if energy_form == "residual" else output
        return 0.5 * jnp.sum(residual**2, axis=(1, 2))

    return energy


def make_predict_fn(unet: TemporalUnet, config: Config) -> PredictFn:
    """The denoiser's prediction for either parameterization."""
    if config.diffusion.parameterization == "score":
        return unet.apply
    energy = make_energy_fn(unet, config.diffusion.energy_form)

    def predict(params: dict, x: jax.Array, t: jax.Array, *condition) -> jax.Array:
        # samples are independent, so the gradient of the summed energy is per-sample
        return jax.grad(lambda y: energy(params, y, t, *condition).sum())(x)

    return predict
