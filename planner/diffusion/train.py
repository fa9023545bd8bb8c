"""Pure training steps: ``train_step(state, batch, key) -> (state, metrics)`` and a chunk of K of
them per dispatch (``lax.scan``), with batches gathered on device and the batch axis sharded over
every local device.

On XLA:CPU, convolutions inside a rolled loop run one to two orders of magnitude slower than the
same convolutions outside it (jax-ml/jax#12868; measured here: a U-Maze train step takes 0.3 s
alone and 10 s inside ``lax.scan``). The CPU configs therefore use ``steps_per_dispatch: 1``, which
runs one step per call with no loop; accelerators benefit from 10 or more.

Randomness is ``fold_in(seed_key, step)``: a run resumed from step ``s`` draws exactly the batches
and noise an uninterrupted run draws, so the two reach the same parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from planner.config import TrainConfig
from planner.data.windows import WindowBatch, WindowDataset, sample_windows
from planner.diffusion.losses import LossFn


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree of arrays.

    ``step`` int32 scalar; ``params`` and ``ema_params`` the network pytrees; ``opt_state`` Optax's
    state; ``seed_key`` uint32 [2], the raw data of the run's PRNG key.
    """

    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any
    seed_key: jax.Array


def make_optimizer(train: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam after a linear learning-rate warm-up, with optional global-norm gradient clipping."""
    warmup = min(train.warmup_steps, total_steps)
    learning_rate = optax.join_schedules(
        [
            optax.linear_schedule(0.0, train.learning_rate, max(warmup, 1)),
            optax.constant_schedule(train.learning_rate),
        ],
        boundaries=[warmup],
    )
    clip = [optax.clip_by_global_norm(train.grad_clip)] if train.grad_clip else []
    return optax.chain(*clip, optax.adam(learning_rate))


def init_train_state(params: Any, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=params,
        opt_state=optimizer.init(params),
        seed_key=jax.random.key_data(jax.random.key(seed)),
    )


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, train: TrainConfig
) -> Callable[[TrainState, WindowBatch, jax.Array], tuple[TrainState, dict]]:
    """One gradient step, then the moving average: a copy of the parameters before
    ``ema_start``, else every ``ema_every`` steps ``ema ← decay · ema + (1 − decay) · params``."""

    def train_step(state: TrainState, batch: WindowBatch, key: jax.Array):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        decay = jnp.where(
            step < train.ema_start,
            0.0,
            jnp.where(step % train.ema_every == 0, train.ema_decay, 1.0),
        )
        ema_params = jax.tree.map(
            lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params
        )
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
        new_state = state.replace(
            step=step, params=params, ema_params=ema_params, opt_state=opt_state
        )
        return new_state, metrics

    return train_step


def make_train_chunk(
    train_step: Callable, train: TrainConfig, mesh: Mesh, overfit_batch: bool = False
) -> Callable[[TrainState, WindowDataset], tuple[TrainState, dict]]:
    """``chunk(state, windows) -> (state, metrics)``: ``steps_per_dispatch`` steps in one jitted
    ``lax.scan``; ``metrics`` holds one row per step. With ``overfit_batch`` every step sees the
    same batch (the one drawn at step 0). State, windows and metrics are replicated over the
    mesh (so every call sees the same input shardings and nothing retraces); each batch is split
    along its batch axis."""
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    if train.batch_size % mesh.size:
        raise ValueError(
            f"train.batch_size ({train.batch_size}) must be divisible by the {mesh.size} devices"
        )

    def one_step(state: TrainState, windows: WindowDataset):
        key = jax.random.wrap_key_data(state.seed_key)
        batch_key, loss_key = jax.random.split(jax.random.fold_in(key, state.step))
        if overfit_batch:
            batch_key, _ = jax.random.split(jax.random.fold_in(key, 0))
        batch = sample_windows(windows, batch_key, train.batch_size)
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return train_step(state, batch, loss_key)

    @functools.partial(jax.jit, out_shardings=replicated)
    def steps(state: TrainState, windows: WindowDataset):
        if train.steps_per_dispatch == 1:  # no loop at all: see the module docstring
            state, metrics = one_step(state, windows)
            return state, jax.tree.map(lambda m: m[None], metrics)
        return jax.lax.scan(
            lambda s, _: one_step(s, windows), state, None, length=train.steps_per_dispatch
        )

    def chunk(state: TrainState, windows: WindowDataset):
        # placing the inputs first (a no-op once they are placed) keeps the first and later
        # calls on the same compiled function
        return steps(*jax.device_put((state, windows), replicated))

    return chunk
