"""A learned temporal distance: a goal-conditioned value trained on the planner's data.

As OGBench's GCIVL value (``impls/agents/gcivl.py``): ``V(s, g)`` regresses, by expectile
regression toward the better outcomes, on ``r + γ V'(s', g)`` with reward ``-1`` per transition
and ``0`` (episode end) when the goal is the state itself; two networks whose target copies
(Polyak-averaged) give the bootstrap's minimum. Goals are relabelled as OGBench's value does: the
state itself (``p_current``), a state later in the same episode at a geometric number of
transitions (``p_trajectory``), or any state of the dataset (the rest), which is what lets the
value chain segments of different episodes. Transitions here jump ``stride`` environment steps
(the planner's subgoal spacing), so values propagate over long routes in fewer backups.

``V`` converts to steps: ``d = stride · log(1 + (1 - γ) V) / log γ`` is the number of
environment steps to the goal the value believes. With it the planner picks subgoals (see
:mod:`planner.control.subgoals`); the value never sees the walls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from planner.config import Config
from planner.data.episodes import Episodes
from planner.data.sources import load_episodes
from planner.errors import PlannerError
from planner.goal_conditioned import (
    GoalConditionedMLP,
    fit,
    load_with_params,
    save_with_params,
    scaled,
    trained_unless_kept,
)

HIDDEN = (256, 256, 256)
VALUE_FILE = "goal_value.npz"  # in the run directory `planner train-goal-value` writes
N_WAYPOINTS = 1024  # dataset observations kept with the value as candidate subgoals


@dataclass(frozen=True)
class GoalValue:
    """A trained goal-conditioned value: parameters (two networks stacked on a leading axis),
    the observation scale it was trained with, its discount and stride, and ``waypoints`` [M, O]
    (observations drawn from its dataset, the subgoals a policy may choose among)."""

    params: Any
    observation_mean: np.ndarray
    observation_std: np.ndarray
    discount: float
    stride: int
    waypoints: np.ndarray

    def steps_to_go(self, observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``[B]`` environment steps from ``observations`` [B, O] to ``goals`` [B, O] as the
        value believes (the mean of its two networks)."""
        inputs = scaled(self.observation_mean, self.observation_std, observations, goals)
        values = np.asarray(_values(self.params, *inputs)).mean(axis=0)
        return steps_from_values(values, self.discount, self.stride)

    def pairwise_steps(self, observations: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``[Q, M]`` steps from each of ``observations`` [Q, O] to each of ``goals`` [M, O]."""
        q, m = len(observations), len(goals)
        repeated = np.repeat(observations, m, axis=0)
        tiled = np.tile(goals, (q, 1))
        return self.steps_to_go(repeated, tiled).reshape(q, m)

    def save(self, path: Path) -> None:
        """Write the value to ``path`` (``.npz``)."""
        save_with_params(
            path, self.params, observation_mean=self.observation_mean,
            observation_std=self.observation_std, discount=self.discount, stride=self.stride,
            waypoints=self.waypoints,
        )  # fmt: skip

    @staticmethod
    def load(path: Path) -> GoalValue:
        def template(arrays: dict) -> Any:
            return _init_pair(jax.random.key(0), arrays["observation_mean"].shape[0])

        params, arrays = load_with_params(path, template)
        return GoalValue(
            params, arrays["observation_mean"], arrays["observation_std"],
            float(arrays["discount"]), int(arrays["stride"]), arrays["waypoints"],
        )  # fmt: skip


def load_goal_value(run_dir: Path) -> GoalValue:
    """The value `planner train-goal-value` wrote into ``run_dir``."""
    path = Path(run_dir) / VALUE_FILE
    if not path.is_file():
        raise PlannerError(
            f"{path}: no goal-conditioned value there; train one with `planner train-goal-value "
            f"--config CONFIG --run-dir {run_dir}`"
        )
    return GoalValue.load(path)


def steps_from_values(values: np.ndarray, discount: float, stride: int) -> np.ndarray:
    """Environment steps ``stride · log(1 + (1 - γ) V) / log γ`` of values ``V`` (those below
    the value of never arriving count as its horizon's 10-fold)."""
    floor = np.exp(10 * np.log(discount) / (1 - discount))  # 1 + (1 - γ) V at d = 10 / (1 - γ)
    inside = np.clip(1 + (1 - discount) * np.asarray(values, np.float64), floor, 1.0)
    return stride * np.log(inside) / np.log(discount)


def _network() -> GoalConditionedMLP:
    return GoalConditionedMLP(1, HIDDEN, squash=False)


@jax.jit
def _values(params: Any, observations: jax.Array, goals: jax.Array) -> jax.Array:
    """``[2, B]`` both networks' values."""
    apply = jax.vmap(_network().apply, in_axes=(0, None, None))
    return apply(params, observations, goals)[..., 0]


def _init_pair(key: jax.Array, observation_dim: int) -> Any:
    zeros = jnp.zeros((1, observation_dim))
    return jax.vmap(lambda k: _network().init(k, zeros, zeros))(jax.random.split(key))


def relabelled_goals(
    key: jax.Array,
    indices: jax.Array,
    episode_last: jax.Array,
    n_steps: int,
    stride: int,
    discount: float,
    p_current: float,
    p_trajectory: float,
) -> jax.Array:
    """``[B]`` goal indices for steps ``indices`` [B]: the step itself with ``p_current``, the
    step a geometric (success ``1 - γ``) number of ``stride``-step transitions later in its
    episode (capped at the episode's last step ``episode_last`` [B]) with ``p_trajectory``,
    otherwise any of the dataset's ``n_steps`` steps."""
    choice_key, geometric_key, random_key = jax.random.split(key, 3)
    transitions = jax.random.geometric(geometric_key, 1 - discount, indices.shape)
    later = jnp.minimum(indices + stride * transitions, episode_last)
    anywhere = jax.random.randint(random_key, indices.shape, 0, n_steps)
    choice = jax.random.uniform(choice_key, indices.shape)
    return jnp.where(
        choice < p_current, indices, jnp.where(choice < p_current + p_trajectory, later, anywhere)
    )


def expectile_loss(advantage: jax.Array, error: jax.Array, expectile: float) -> jax.Array:
    """Mean of ``|τ - 1[advantage < 0]| · error²``: regression toward the upper expectile."""
    weight = jnp.where(advantage >= 0, expectile, 1 - expectile)
    return jnp.mean(weight * error**2)


def train_goal_value(
    episodes: Episodes,
    steps: int,
    stride: int,
    seed: int = 0,
    batch_size: int = 256,
    learning_rate: float = 3e-4,
    discount: float = 0.99,
    expectile: float = 0.9,
    target_rate: float = 0.005,
    p_current: float = 0.2,
    p_trajectory: float = 0.5,
    show_progress: bool = True,
) -> tuple[GoalValue, list[float]]:
    """``(value, losses)``: the value trained ``steps`` steps on ``episodes`` (OGBench's GCIVL
    defaults for the discount, expectile, target rate and goal mixture); ``losses`` is the mean
    loss of every 1,000 steps."""
    mean = np.asarray(episodes.observations.mean(axis=0))
    std = np.asarray(episodes.observations.std(axis=0)) + 1e-6
    standardized = scaled(mean, std, episodes.observations)[0]
    last = jnp.asarray(np.repeat(episodes.boundaries[1:] - 1, episodes.episode_lengths))
    key, init_key, waypoint_key = jax.random.split(jax.random.key(seed), 3)
    params = _init_pair(init_key, standardized.shape[1])
    optimizer = optax.adam(learning_rate)
    apply = jax.vmap(_network().apply, in_axes=(0, None, None))

    def loss_fn(params, target, key):
        index_key, goal_key = jax.random.split(key)
        index = jax.random.randint(index_key, (batch_size,), 0, len(standardized))
        following = jnp.minimum(index + stride, last[index])
        goal = relabelled_goals(
            goal_key,
            index,
            last[index],
            len(standardized),
            stride,
            discount,
            p_current,
            p_trajectory,
        )
        arrived = goal == index
        reward, carry_on = jnp.where(arrived, 0.0, -1.0), jnp.where(arrived, 0.0, 1.0)
        observation, goal_observation = standardized[index], standardized[goal]
        next_values = apply(target, standardized[following], goal_observation)[..., 0]  # [2, B]
        target_values = apply(target, observation, goal_observation)[..., 0]
        advantage = reward + discount * carry_on * next_values.min(axis=0) - target_values.mean(0)
        backup = reward + discount * carry_on * next_values
        values = apply(params, observation, goal_observation)[..., 0]
        return expectile_loss(advantage, backup - values, expectile) * 2

    @jax.jit
    def update(state, key):
        params, target, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, target, key)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, changes)
        return (params, optax.incremental_update(params, target, target_rate), opt_state), loss

    state = (params, params, optimizer.init(params))
    (params, _, _), losses = fit(update, state, key, steps, "train goal value", show_progress)
    chosen = jax.random.choice(
        waypoint_key, len(standardized), (min(N_WAYPOINTS, len(standardized)),), False
    )
    waypoints = np.asarray(episodes.observations)[np.asarray(chosen)]
    return GoalValue(params, mean, std, discount, stride, waypoints), losses


def train_goal_value_run(config: Config, run_dir: Path, show_progress: bool = True) -> dict:
    """Train the goal value of ``config`` (its data, ``train.goal_value_steps`` steps,
    transitions of ``data.jump`` steps, ``train.seed``) into ``run_dir`` (``goal_value.npz`` and
    ``training.json``) unless one of as many steps is there; the training record."""
    steps, stride = config.train.goal_value_steps, config.data.jump

    def train():
        episodes = load_episodes(config.data)
        return train_goal_value(
            episodes, steps, stride, config.train.seed, show_progress=show_progress
        )

    return trained_unless_kept(run_dir, VALUE_FILE, steps, train, stride=stride)
