"""Goal-conditioned behaviour cloning: OGBench's GCBC baseline, trained on the planner's data.

As OGBench's ``impls/agents/gcbc.py`` with its default goal sampling (``actor_p_trajgoal=1``, no
geometric sampling): the goal of a step is the observation at a step drawn uniformly from the
rest of its episode, and an MLP of the observation and the goal learns the action. OGBench's
actor is a Gaussian with a fixed spread evaluated at its mean (temperature 0), whose
log-likelihood is the squared error used here. Network and optimizer follow OGBench's defaults
(three layers of 512 with layer norm, Adam at 3e-4, batches of 1,024); the number of steps is the
caller's (OGBench trains 1M on a GPU).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from planner.data.episodes import Episodes
from planner.goal_conditioned import (
    GoalConditionedMLP,
    fit,
    load_with_params,
    save_with_params,
    scaled,
)

HIDDEN = (512, 512, 512)


@dataclass(frozen=True)
class GCBC:
    """A trained GCBC policy: parameters and the observation scale it was trained with."""

    params: Any
    action_dim: int
    observation_mean: np.ndarray
    observation_std: np.ndarray

    def act(self, observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``[B, A]`` actions for ``observations`` [B, O] toward ``goals`` [B, O]."""
        inputs = scaled(self.observation_mean, self.observation_std, observations, goals)
        return np.asarray(_act(self.params, self.action_dim, *inputs))

    def save(self, path: Path) -> None:
        """Write the policy to ``path`` (``.npz``)."""
        save_with_params(
            path, self.params, action_dim=self.action_dim,
            observation_mean=self.observation_mean, observation_std=self.observation_std,
        )  # fmt: skip

    @staticmethod
    def load(path: Path) -> GCBC:
        def template(arrays: dict) -> Any:
            observation_dim = arrays["observation_mean"].shape[0]
            return _init(jax.random.key(0), int(arrays["action_dim"]), observation_dim)

        params, arrays = load_with_params(path, template)
        return GCBC(
            params, int(arrays["action_dim"]), arrays["observation_mean"],
            arrays["observation_std"],
        )  # fmt: skip


def _network(action_dim: int) -> GoalConditionedMLP:
    return GoalConditionedMLP(action_dim, HIDDEN)


@functools.partial(jax.jit, static_argnums=1)
def _act(params: Any, action_dim: int, observations: jax.Array, goals: jax.Array) -> jax.Array:
    return _network(action_dim).apply(params, observations, goals)


def _init(key: jax.Array, action_dim: int, observation_dim: int) -> Any:
    zeros = jnp.zeros((1, observation_dim))
    return _network(action_dim).init(key, zeros, zeros)


def future_goal_indices(key: jax.Array, indices: jax.Array, episode_last: jax.Array) -> jax.Array:
    """``[B]`` for steps ``indices`` [B], a step drawn uniformly from ``indices + 1`` to their
    episode's last step ``episode_last`` [B] (the step itself where it is the last)."""
    fraction = jax.random.uniform(key, indices.shape)
    first = jnp.minimum(indices + 1, episode_last)
    return jnp.round(first * (1 - fraction) + episode_last * fraction).astype(jnp.int32)


def train_gcbc(
    episodes: Episodes,
    steps: int,
    seed: int = 0,
    batch_size: int = 1024,
    learning_rate: float = 3e-4,
    show_progress: bool = True,
) -> tuple[GCBC, list[float]]:
    """``(policy, losses)``: GCBC trained ``steps`` steps on ``episodes``; ``losses`` is the mean
    squared action error of every 1,000 steps."""
    observations = jnp.asarray(episodes.observations)
    mean = np.asarray(episodes.observations.mean(axis=0))
    std = np.asarray(episodes.observations.std(axis=0)) + 1e-6
    standardized = (observations - mean) / std
    actions = jnp.asarray(np.clip(episodes.actions, -1.0, 1.0))
    last = jnp.asarray(np.repeat(episodes.boundaries[1:] - 1, episodes.episode_lengths))
    action_dim = actions.shape[1]
    key, init_key = jax.random.split(jax.random.key(seed))
    params = _init(init_key, action_dim, standardized.shape[1])
    optimizer = optax.adam(learning_rate)
    model = _network(action_dim)

    def loss_fn(params, key):
        index_key, goal_key = jax.random.split(key)
        index = jax.random.randint(index_key, (batch_size,), 0, len(standardized))
        goal = future_goal_indices(goal_key, index, last[index])
        predicted = model.apply(params, standardized[index], standardized[goal])
        return jnp.mean(jnp.sum((predicted - actions[index]) ** 2, axis=-1))

    @jax.jit
    def update(state, key):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, changes), opt_state), loss

    state = (params, optimizer.init(params))
    (params, _), losses = fit(update, state, key, steps, "train GCBC", show_progress)
    return GCBC(params, action_dim, mean, std), losses
