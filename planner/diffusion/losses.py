"""Training objectives: the denoising loss, the value regression loss and behaviour cloning.

The first two draw a noise level per window, noise the window, impose the hard conditions on the
noisy input exactly as the sampler will, and evaluate the network there. Behaviour cloning
regresses each window's first action on its first observation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from planner.config import Config
from planner.data.windows import WindowBatch
from planner.diffusion.conditioning import endpoint_conditions, impose
from planner.diffusion.schedule import Schedule, add_noise

LossFn = Callable[[dict, WindowBatch, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def loss_weights(
    horizon: int, transition_dim: int, action_dim: int, action_weight: float, discount: float
) -> np.ndarray:
    """``[H, D]`` per-entry weights: ``discount^h`` along the horizon, and ``action_weight`` on
    the first action (Diffuser's weighting)."""
    weights = np.repeat((discount ** np.arange(horizon))[:, None], transition_dim, axis=1)
    weights[0, :action_dim] = action_weight
    return weights.astype(np.float32)


def noisy_conditioned_input(
    schedule: Schedule,
    batch: WindowBatch,
    key: jax.Array,
    action_dim: int,
    condition_goal: bool,
    condition_start: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(x_t, t, noise, mask)``: the batch noised at random levels, conditions imposed."""
    x0 = batch.trajectories
    level_key, noise_key = jax.random.split(key)
    t = jax.random.randint(level_key, (x0.shape[0],), 0, schedule.n_steps)
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    goal = batch.goal if condition_goal else None
    mask, values = endpoint_conditions(
        batch.start, goal, x0.shape[1], action_dim, fix_start=condition_start
    )
    return impose(add_noise(schedule, x0, t, noise), mask, values), t, noise, mask


def make_diffusion_loss(
    config: Config,
    predict: Callable[[dict, jax.Array, jax.Array], jax.Array],
    schedule: Schedule,
    horizon: int,
    transition_dim: int,
    action_dim: int,
) -> LossFn:
    """``loss(params, batch, key) -> (loss, metrics)``: weighted squared error of the predicted
    noise (``predict_epsilon``) or clean trajectory, over the entries that are not conditioned;
    attribute-conditioned models see each window's drawn attribute."""
    diffusion = config.diffusion
    weights = jnp.asarray(
        loss_weights(
            horizon, transition_dim, action_dim, diffusion.action_weight, diffusion.loss_discount
        )
    )

    conditional = bool(config.data.attributes)

    def loss(params: dict, batch: WindowBatch, key: jax.Array):
        x_t, t, noise, mask = noisy_conditioned_input(
            schedule, batch, key, action_dim, diffusion.condition_goal, diffusion.condition_start
        )
        target = noise if diffusion.predict_epsilon else batch.trajectories
        attribute = (batch.attribute,) if conditional else ()
        error = (predict(params, x_t, t, *attribute) - target) ** 2 * jnp.where(mask, 0.0, weights)
        first_action = error[:, 0, :action_dim].mean() / jnp.maximum(weights[0, 0], 1e-8)
        mean_error = error.mean()
        return mean_error, {"loss": mean_error, "first_action_loss": first_action}

    return loss


def make_value_loss(
    config: Config,
    value_fn: Callable[[dict, jax.Array, jax.Array], jax.Array],
    schedule: Schedule,
    action_dim: int,
) -> LossFn:
    """``loss(params, batch, key) -> (loss, metrics)``: squared error of the predicted return-to-go
    of the noisy, start-conditioned window."""

    def loss(params: dict, batch: WindowBatch, key: jax.Array):
        x_t, t, _, _ = noisy_conditioned_input(schedule, batch, key, action_dim, False)
        prediction = value_fn(params, x_t, t)
        error = jnp.mean((prediction - batch.values) ** 2)
        return error, {"loss": error, "value_mean": prediction.mean()}

    return loss


def make_bc_loss(policy_fn: Callable[[dict, jax.Array], jax.Array], action_dim: int) -> LossFn:
    """``loss(params, batch, key) -> (loss, metrics)``: squared error of the first action
    predicted from the first observation (both normalized)."""

    def loss(params: dict, batch: WindowBatch, key: jax.Array):
        first = batch.trajectories[:, 0]
        error = jnp.mean((policy_fn(params, first[:, action_dim:]) - first[:, :action_dim]) ** 2)
        return error, {"loss": error}

    return loss


def make_inverse_dynamics_loss(
    inverse_fn: Callable[[dict, jax.Array, jax.Array], jax.Array], action_dim: int
) -> LossFn:
    """``loss(params, batch, key) -> (loss, metrics)``: squared error of the first action
    predicted from the first two observations (all normalized). A window starting at its
    episode's last step pairs that observation with itself (the padding at rest): one pair per
    episode, kept."""

    def loss(params: dict, batch: WindowBatch, key: jax.Array):
        first, second = batch.trajectories[:, 0], batch.trajectories[:, 1]
        predicted = inverse_fn(params, first[:, action_dim:], second[:, action_dim:])
        error = jnp.mean((predicted - first[:, :action_dim]) ** 2)
        return error, {"loss": error}

    return loss
