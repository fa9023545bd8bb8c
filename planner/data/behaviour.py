"""Behaviour policies for regenerated locomotion datasets: CrossQ (Bhatt et al., ICLR 2024).

CrossQ is SAC (tanh-Gaussian actor, automatic entropy temperature with target entropy
``-action_dim``, twin Q networks) without target networks: the critic has BatchNorm and is run
once, in training mode, on the concatenation ``[(s, a); (s', a' ~ π(s'))]`` so that its batch
statistics cover both halves; the bootstrap target is built from the second half under a
``stop_gradient``. Adam has ``beta1 = 0.5``; the actor and temperature update once every
``policy_delay`` critic updates.

Everything that crosses ``jit`` is the :class:`AgentState` pytree plus arrays. The training loop
steps one simulator on the host (random actions for the warm-up, then the sampled policy), keeps
every transition in a replay buffer (returned: it is D4RL's *medium-replay*), and runs
``updates_per_dispatch`` updates per jitted call with ``lax.scan``. Actions are kept in the
policy's range ``[-1, 1]`` and mapped to the simulator's bounds when stepping.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct, traverse_util
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.tasks.locomotion import LocomotionTask

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0

Batch = dict[str, jax.Array]


@dataclass(frozen=True)
class CrossQConfig:
    """CrossQ's hyperparameters (the paper's, except a 256-wide critic: 6x faster on a CPU)."""

    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    learning_rate: float = 1e-3
    adam_beta1: float = 0.5
    discount: float = 0.99
    batch_size: int = 256
    policy_delay: int = 3
    warmup_steps: int = 5_000
    batch_norm_momentum: float = 0.99
    initial_temperature: float = 1.0
    updates_per_dispatch: int = 12  # a multiple of policy_delay

    def __post_init__(self) -> None:
        if self.updates_per_dispatch % self.policy_delay:
            raise ValueError(
                f"updates_per_dispatch ({self.updates_per_dispatch}) must be a multiple of "
                f"policy_delay ({self.policy_delay})"
            )


# --- networks --------------------------------------------------------------------------------


class Actor(nn.Module):
    """``observations [B, O] -> (mean [B, A], log_std [B, A])`` of the pre-tanh Gaussian."""

    hidden: Sequence[int]
    action_dim: int

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = observations
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.clip(nn.Dense(self.action_dim)(x), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


class QNetwork(nn.Module):
    """``(observations [B, O], actions [B, A]) -> Q [B]`` with BatchNorm on the input and after
    every hidden layer; ``train`` selects batch statistics (and updates the running ones)."""

    hidden: Sequence[int]
    momentum: float
    train: bool

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        def norm(x: jax.Array) -> jax.Array:
            return nn.BatchNorm(use_running_average=not self.train, momentum=self.momentum)(x)

        x = norm(jnp.concatenate([observations, actions], axis=-1))
        for width in self.hidden:
            x = nn.relu(norm(nn.Dense(width)(x)))
        return nn.Dense(1)(x)[..., 0]


class TwinQ(nn.Module):
    """Two independent :class:`QNetwork`: ``(observations [B, O], actions [B, A]) -> Q [2, B]``."""

    hidden: Sequence[int]
    momentum: float

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array, train: bool) -> jax.Array:
        twins = nn.vmap(
            QNetwork,
            variable_axes={"params": 0, "batch_stats": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )
        return twins(self.hidden, self.momentum, train)(observations, actions)


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A squashed Gaussian draw ``tanh(u)`` [B, A] and its log-density [B] (change of variables
    ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``, stable for large ``|u|``)."""
    noise = jax.random.normal(key, mean.shape)
    pre_tanh = mean + jnp.exp(log_std) * noise
    gaussian = -0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)
    squash = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.tanh(pre_tanh), (gaussian - squash).sum(axis=-1)


# --- agent -----------------------------------------------------------------------------------


class AgentState(struct.PyTreeNode):
    """Everything CrossQ learns: parameters, critic BatchNorm statistics, optimizer states."""

    actor: Any
    critic: Any
    critic_stats: Any
    log_temperature: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    temperature_opt: optax.OptState


def _networks(config: CrossQConfig, action_dim: int) -> tuple[Actor, TwinQ]:
    return (
        Actor(config.actor_hidden, action_dim),
        TwinQ(config.critic_hidden, config.batch_norm_momentum),
    )


def _optimizer(config: CrossQConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate, b1=config.adam_beta1)


def init_agent(
    config: CrossQConfig, key: jax.Array, observation_dim: int, action_dim: int
) -> AgentState:
    """A fresh agent for ``observation_dim`` / ``action_dim``."""
    actor, critic = _networks(config, action_dim)
    actor_key, critic_key = jax.random.split(key)
    observations, actions = jnp.zeros((1, observation_dim)), jnp.zeros((1, action_dim))
    actor_params = actor.init(actor_key, observations)["params"]
    critic_vars = critic.init(critic_key, observations, actions, train=False)
    log_temperature = jnp.asarray(math.log(config.initial_temperature), jnp.float32)
    optimizer = _optimizer(config)
    return AgentState(
        actor=actor_params,
        critic=critic_vars["params"],
        critic_stats=critic_vars["batch_stats"],
        log_temperature=log_temperature,
        actor_opt=optimizer.init(actor_params),
        critic_opt=optimizer.init(critic_vars["params"]),
        temperature_opt=optimizer.init(log_temperature),
    )


@functools.cache
def make_act(config: CrossQConfig, action_dim: int) -> Callable[..., jax.Array]:
    """Jitted ``act(actor_params, observations [B, O], key, deterministic) -> actions [B, A]`` in
    ``[-1, 1]``: the squashed mean when ``deterministic`` (static), else a squashed draw."""
    actor, _ = _networks(config, action_dim)

    def act(params: Any, observations: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        mean, log_std = actor.apply({"params": params}, observations)
        if deterministic:
            return jnp.tanh(mean)
        return tanh_gaussian_sample(mean, log_std, key)[0]

    return jax.jit(act, static_argnames="deterministic")


@functools.cache
def make_update(config: CrossQConfig, action_dim: int) -> Callable[..., tuple[AgentState, dict]]:
    """Jitted ``update(state, batches, key) -> (state, info)`` (one per config and action size,
    so a process compiles it once).

    ``batches`` holds ``updates_per_dispatch`` minibatches shaped ``[K / d, d, B, ...]`` (``d`` =
    ``policy_delay``): ``observations`` [.., O], ``actions`` [.., A] in ``[-1, 1]``, ``rewards``,
    ``terminals``, ``next_observations``. Each group of ``d`` makes ``d`` critic updates then one
    actor and temperature update on the last minibatch. ``info`` has the means over the call.
    """
    actor, critic = _networks(config, action_dim)
    optimizer = _optimizer(config)
    target_entropy = -float(action_dim)

    def critic_loss(
        params: Any, state: AgentState, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, tuple[Any, dict]]:
        temperature = jnp.exp(state.log_temperature)
        mean, log_std = actor.apply({"params": state.actor}, batch["next_observations"])
        next_actions, next_log_probs = tanh_gaussian_sample(mean, log_std, key)
        # One training-mode pass over [(s, a); (s', a')]: BatchNorm sees both distributions.
        q, updates = critic.apply(
            {"params": params, "batch_stats": state.critic_stats},
            jnp.concatenate([batch["observations"], batch["next_observations"]]),
            jnp.concatenate([batch["actions"], next_actions]),
            train=True,
            mutable=["batch_stats"],
        )
        q_now, q_next = jnp.split(q, 2, axis=1)
        soft_next = q_next.min(axis=0) - temperature * next_log_probs
        target = batch["rewards"] + config.discount * (1.0 - batch["terminals"]) * soft_next
        loss = ((q_now - jax.lax.stop_gradient(target)) ** 2).mean(axis=1).sum()
        return loss, (updates["batch_stats"], {"critic/loss": loss, "critic/q": q_now.mean()})

    def critic_step(state: AgentState, inputs: tuple[Batch, jax.Array]) -> tuple[AgentState, dict]:
        batch, key = inputs
        grads, (stats, info) = jax.grad(critic_loss, has_aux=True)(state.critic, state, batch, key)
        updates, critic_opt = optimizer.update(grads, state.critic_opt)
        params = optax.apply_updates(state.critic, updates)
        return state.replace(critic=params, critic_stats=stats, critic_opt=critic_opt), info

    def actor_loss(
        params: Any, state: AgentState, observations: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply({"params": params}, observations)
        actions, log_probs = tanh_gaussian_sample(mean, log_std, key)
        q = critic.apply(
            {"params": state.critic, "batch_stats": state.critic_stats},
            observations,
            actions,
            train=False,
        )
        temperature = jnp.exp(state.log_temperature)
        return (temperature * log_probs - q.min(axis=0)).mean(), log_probs

    def temperature_loss(log_temperature: jax.Array, log_probs: jax.Array) -> jax.Array:
        return -(log_temperature * jax.lax.stop_gradient(log_probs + target_entropy)).mean()

    def actor_step(state: AgentState, batch: Batch, key: jax.Array) -> tuple[AgentState, dict]:
        (loss, log_probs), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor, state, batch["observations"], key
        )
        updates, actor_opt = optimizer.update(grads, state.actor_opt)
        actor_params = optax.apply_updates(state.actor, updates)
        temperature_grad = jax.grad(temperature_loss)(state.log_temperature, log_probs)
        updates, temperature_opt = optimizer.update(temperature_grad, state.temperature_opt)
        log_temperature = optax.apply_updates(state.log_temperature, updates)
        state = state.replace(
            actor=actor_params,
            actor_opt=actor_opt,
            log_temperature=log_temperature,
            temperature_opt=temperature_opt,
        )
        info = {
            "actor/loss": loss,
            "actor/entropy": -log_probs.mean(),
            "temperature": jnp.exp(log_temperature),
        }
        return state, info

    def group(state: AgentState, inputs: tuple[Batch, jax.Array]) -> tuple[AgentState, dict]:
        batches, key = inputs
        keys = jax.random.split(key, config.policy_delay + 1)
        state, critic_info = jax.lax.scan(critic_step, state, (batches, keys[1:]))
        last = jax.tree.map(lambda x: x[-1], batches)
        state, actor_info = actor_step(state, last, keys[0])
        return state, {**jax.tree.map(jnp.mean, critic_info), **actor_info}

    def update(state: AgentState, batches: Batch, key: jax.Array) -> tuple[AgentState, dict]:
        n_groups = config.updates_per_dispatch // config.policy_delay
        state, info = jax.lax.scan(group, state, (batches, jax.random.split(key, n_groups)))
        return state, jax.tree.map(jnp.mean, info)

    return jax.jit(update)


# --- simulation ------------------------------------------------------------------------------


def to_env_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Policy actions in ``[-1, 1]`` [..., A] mapped affinely onto ``[low, high]`` (exactly the
    identity when the bounds are ``[-1, 1]``)."""
    return (high + low) / 2 + np.asarray(actions) * ((high - low) / 2)


@dataclass
class Episode:
    """One finished episode of ``T`` steps: float32 ``observations``, ``actions`` (simulator
    units), ``next_observations`` [T, .], ``rewards`` [T], bool ``terminals`` / ``timeouts`` [T]
    (``timeouts`` only on a last step cut by the time limit)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray

    @property
    def length(self) -> int:
        return len(self.rewards)


def stream_episodes(
    task: LocomotionTask,
    policy: Callable[[np.ndarray, int], np.ndarray],
    env_seeds: Sequence[int],
) -> Iterator[tuple[int, Episode]]:
    """Step ``len(env_seeds)`` simulators together under ``policy(observations [N, O], t) ->
    actions [N, A]`` (in ``[-1, 1]``) and yield ``(env_index, episode)`` as episodes finish, in
    order of finishing (ties by index), forever. Simulator ``i`` is reset once from
    ``env_seeds[i]`` and then continues its own random stream, so the output is deterministic."""
    envs = [task.make_env() for _ in env_seeds]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    observations = np.stack(
        [env.reset(seed=int(s))[0] for env, s in zip(envs, env_seeds, strict=True)]
    )
    open_steps: list[list[tuple]] = [[] for _ in envs]
    t = 0
    while True:
        actions = to_env_actions(policy(observations.astype(np.float32), t), low, high)
        for i, env in enumerate(envs):
            next_obs, reward, terminated, truncated, _ = env.step(actions[i])
            step = (observations[i].copy(), actions[i].copy(), reward, terminated, next_obs)
            open_steps[i].append(step)  # copies: the batch arrays are overwritten in place
            if terminated or truncated:
                yield i, _episode(open_steps[i], timed_out=truncated and not terminated)
                open_steps[i] = []
                next_obs, _ = env.reset()
            observations[i] = next_obs
        t += 1


def _episode(steps: list[tuple], timed_out: bool) -> Episode:
    observations, actions, rewards, terminals, next_observations = zip(*steps, strict=True)
    timeouts = np.zeros(len(steps), bool)
    timeouts[-1] = timed_out
    return Episode(
        observations=np.asarray(observations, np.float32),
        actions=np.asarray(actions, np.float32),
        rewards=np.asarray(rewards, np.float32),
        terminals=np.asarray(terminals, bool),
        timeouts=timeouts,
        next_observations=np.asarray(next_observations, np.float32),
    )


def policy_fn(
    act: Callable[..., jax.Array], actor_params: Any, key: jax.Array, deterministic: bool
) -> Callable[[np.ndarray, int], np.ndarray]:
    """``(observations [N, O], t) -> actions [N, A]``; step ``t`` draws with ``fold_in(key, t)``."""

    def policy(observations: np.ndarray, t: int) -> np.ndarray:
        step_key = jax.random.fold_in(key, t)
        return np.asarray(act(actor_params, observations, step_key, deterministic))

    return policy


def evaluate(
    task: LocomotionTask,
    act: Callable[..., jax.Array],
    actor_params: Any,
    episodes: int,
    seed: int,
    deterministic: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(returns [episodes], lengths [episodes])`` of the policy (mean actions, or sampled
    ones as in collection), one episode per simulator, all stepped together."""
    policy = policy_fn(act, actor_params, jax.random.key(0), deterministic=deterministic)
    seeds = np.random.SeedSequence((seed, 1)).generate_state(episodes)
    first: dict[int, Episode] = {}
    for index, episode in stream_episodes(task, policy, seeds):
        first.setdefault(index, episode)
        if len(first) == episodes:
            returns = [first[i].rewards.sum() for i in range(episodes)]
            return np.array(returns), np.array([first[i].length for i in range(episodes)])
    raise AssertionError("unreachable: stream_episodes never ends")


# --- training --------------------------------------------------------------------------------


REPLAY_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


@dataclass
class BehaviourRun:
    """A trained behaviour policy and how it was made.

    ``replay`` is every transition trained on (warm-up included), D4RL-style: arrays [N, .] with
    ``actions`` in ``[-1, 1]``, ``timeouts`` on time-limit cuts and on the last transition.
    ``history`` is ``[(env_step, mean deterministic return)]`` at each evaluation.
    """

    task: str
    seed: int
    config: CrossQConfig
    actor: Any
    replay: dict[str, np.ndarray]
    history: list[tuple[int, float]]
    steps: int
    seconds: float
    stop_return: float | None
    reached: bool
    info: dict[str, float] = field(default_factory=dict)

    @property
    def final_return(self) -> float:
        return self.history[-1][1] if self.history else float("nan")


def train_behaviour(
    task: LocomotionTask,
    seed: int,
    max_steps: int,
    stop_return: float | None = None,
    config: CrossQConfig = CrossQConfig(),
    eval_every: int = 5_000,
    eval_episodes: int = 5,
    show_progress: bool = True,
) -> BehaviourRun:
    """Train CrossQ on ``task`` for ``max_steps`` simulator steps, or until the mean return of
    ``eval_episodes`` deterministic episodes, measured every ``eval_every`` steps, reaches
    ``stop_return``. One update per step after ``config.warmup_steps`` uniformly random steps."""
    env = task.make_env()
    low, high = env.action_space.low, env.action_space.high
    observation_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    init_key, act_key, update_key = jax.random.split(jax.random.key(seed), 3)
    state = init_agent(config, init_key, observation_dim, action_dim)
    act, update = make_act(config, action_dim), make_update(config, action_dim)
    replay = _empty_replay(max_steps, observation_dim, action_dim)
    history: list[tuple[int, float]] = []
    info: dict[str, float] = {}
    reached = False

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    eval_column = TextColumn("eval return {task.fields[eval_return]}")
    began = time.perf_counter()
    with Progress(*columns, eval_column, TimeElapsedColumn(), disable=not show_progress) as bar:
        progress = bar.add_task(f"CrossQ {task.name}", total=max_steps, eval_return="-")
        observation, _ = env.reset(seed=seed)
        for step in range(max_steps):
            if step < config.warmup_steps:
                action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            else:
                key = jax.random.fold_in(act_key, step)
                action = np.asarray(act(state.actor, observation[None], key, False))[0]
            next_observation, reward, terminated, truncated, _ = env.step(
                to_env_actions(action, low, high)
            )
            timed_out = truncated and not terminated
            transition = (observation, action, reward, terminated, timed_out, next_observation)
            for name, value in zip(REPLAY_KEYS, transition, strict=True):
                replay[name][step] = value
            observation = env.reset()[0] if terminated or truncated else next_observation
            filled = step + 1

            learned = filled - config.warmup_steps
            if learned > 0 and learned % config.updates_per_dispatch == 0:
                batches = _sample_batches(rng, replay, filled, config)
                state, metrics = update(state, batches, jax.random.fold_in(update_key, filled))
                info = {name: float(value) for name, value in metrics.items()}
            if filled % eval_every == 0 and learned > 0:
                returns, lengths = evaluate(task, act, state.actor, eval_episodes, seed + filled)
                history.append((filled, float(returns.mean())))
                bar.update(progress, eval_return=f"{returns.mean():,.0f}")
                if show_progress:
                    bar.console.print(
                        f"{task.name} step {filled:,}: eval return {returns.mean():,.1f} ± "
                        f"{returns.std():,.1f}, length {lengths.mean():,.0f}, "
                        f"{time.perf_counter() - began:,.0f} s"
                    )
                reached = stop_return is not None and bool(returns.mean() >= stop_return)
            bar.update(progress, completed=filled)
            if reached:
                break

    replay = {name: value[:filled] for name, value in replay.items()}
    replay["timeouts"][-1] = not replay["terminals"][-1]
    return BehaviourRun(
        task=task.name,
        seed=seed,
        config=config,
        actor=state.actor,
        replay=replay,
        history=history,
        steps=filled,
        seconds=time.perf_counter() - began,
        stop_return=stop_return,
        reached=reached,
        info=info,
    )


def _empty_replay(capacity: int, observation_dim: int, action_dim: int) -> dict[str, np.ndarray]:
    shapes = {
        "observations": (observation_dim,),
        "actions": (action_dim,),
        "rewards": (),
        "next_observations": (observation_dim,),
    }
    replay = {name: np.zeros((capacity, *shape), np.float32) for name, shape in shapes.items()}
    replay |= {name: np.zeros(capacity, bool) for name in ("terminals", "timeouts")}
    return replay


def _sample_batches(
    rng: np.random.Generator, replay: dict[str, np.ndarray], filled: int, config: CrossQConfig
) -> Batch:
    """``updates_per_dispatch`` uniform minibatches of the first ``filled`` transitions, shaped
    ``[K / policy_delay, policy_delay, batch_size, ...]``."""
    shape = (
        config.updates_per_dispatch // config.policy_delay,
        config.policy_delay,
        config.batch_size,
    )
    index = rng.integers(0, filled, shape)
    keys = ("observations", "actions", "rewards", "next_observations")
    batch = {name: jnp.asarray(replay[name][index]) for name in keys}
    batch["terminals"] = jnp.asarray(replay["terminals"][index], jnp.float32)
    return batch


# --- saving ----------------------------------------------------------------------------------


def save_policy(path: str | Path, run: BehaviourRun) -> Path:
    """Write ``run``'s actor parameters and how it was trained (config, steps, seconds, history)
    to an ``.npz`` file; :func:`load_policy` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "task": run.task,
        "seed": run.seed,
        "config": asdict(run.config),
        "steps": run.steps,
        "seconds": run.seconds,
        "stop_return": run.stop_return,
        "reached": run.reached,
        "history": run.history,
        "info": run.info,
    }
    params = traverse_util.flatten_dict(jax.device_get(run.actor), sep="/")
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, metadata=json.dumps(metadata), **{f"actor/{k}": v for k, v in params.items()})
    partial.replace(path)
    return path


def load_policy(path: str | Path) -> tuple[Any, CrossQConfig, dict[str, Any]]:
    """``(actor_params, config, metadata)`` from a file written by :func:`save_policy`."""
    with np.load(Path(path)) as archive:
        metadata = json.loads(str(archive["metadata"]))
        flat = {
            key.removeprefix("actor/"): jnp.asarray(archive[key])
            for key in archive.files
            if key.startswith("actor/")
        }
    raw = metadata["config"]
    config = CrossQConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    return traverse_util.unflatten_dict(flat, sep="/"), config, metadata


def save_replay(path: str | Path, replay: dict[str, np.ndarray]) -> Path:
    """Write a replay buffer (``REPLAY_KEYS`` arrays) as a compressed ``.npz`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, **replay)
    partial.replace(path)
    return path


def load_replay(path: str | Path) -> dict[str, np.ndarray]:
    """The replay buffer written by :func:`save_replay`."""
    with np.load(Path(path)) as archive:
        return {name: archive[name] for name in REPLAY_KEYS}
