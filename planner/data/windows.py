"""Training windows: fixed-length slices of episodes, gathered on device inside ``jit``.

A trajectory window of horizon ``H`` is ``[H, A + O]``: per step the action then the observation
(Diffuser's layout), normalized. Windows are conditioned on their first observation (the start)
and their last observation (the goal; Maze2D plans replace its velocity by zero at plan time).
Value models regress the discounted return-to-go from the window's first step.

Attribute-conditioned models (``data.attributes``) also get one attribute per window: one of
the attributes the window has, drawn uniformly, or none (index ``K``) with the configured
probability or when it has none (``planner.data.attributes``).

Jumpy windows (``jump = k > 1``, a high-level model's data) keep every ``k``-th step: row ``i`` is
step ``start + i k``, so ``H`` rows span ``(H - 1) k + 1`` environment steps. The normalizer and
the ``[A + O]`` row layout are those of ``k = 1``; :func:`interpolate_rows` turns such rows back
into one row per step.

Padding policy: with ``padding=False`` a window lies entirely inside one episode, so episodes
shorter than its span contribute no window. With ``padding=True`` a window may start at any step,
and steps past the episode's end repeat its last observation with a zero action ("stay put"),
with the ``rest_dims`` of the observation (velocities) set to zero: at rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from planner.data.attributes import Attribute, window_labels
from planner.data.episodes import DatasetError, Episodes
from planner.data.normalize import Normalizer, fit_normalizer


@struct.dataclass
class WindowDataset:
    """Device arrays from which :func:`sample_windows` gathers batches.

    ``transitions`` [N, A + O] normalized steps; ``window_starts`` [M] int32 flat index of each
    window's first step; ``window_last`` [M] int32 flat index of the last step of its episode;
    ``returns_to_go`` [N] float32 discounted return from each step to its episode's end;
    ``padding_row`` [A + O] the normalized all-zero row; ``padding_rest`` [A + O] bool the
    columns taken from it on padded rows (the action and the rest dims); ``labels`` [M, K] bool
    the windows' attributes (``K = 0`` for unconditioned models); ``unconditional_probability``
    how often a window is shown without its attribute.
    """

    transitions: jax.Array
    window_starts: jax.Array
    window_last: jax.Array
    returns_to_go: jax.Array
    padding_row: jax.Array
    padding_rest: jax.Array
    normalizer: Normalizer
    labels: jax.Array
    horizon: int = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)
    jump: int = struct.field(pytree_node=False, default=1)
    unconditional_probability: float = struct.field(pytree_node=False, default=0.25)

    @property
    def n_windows(self) -> int:
        return int(self.window_starts.shape[0])

    @property
    def span(self) -> int:
        """Environment steps from a window's first row to its last, inclusive."""
        return window_span(self.horizon, self.jump)


@struct.dataclass
class WindowBatch:
    """``trajectories`` [B, H, A + O] normalized; ``start`` and ``goal`` [B, O] (normalized first
    and last observation); ``values`` [B] return-to-go from the first step (unnormalized);
    ``attribute`` [B] int32 the attribute each window is shown with (``K``: none)."""

    trajectories: jax.Array
    start: jax.Array
    goal: jax.Array
    values: jax.Array
    attribute: jax.Array


def window_span(horizon: int, jump: int = 1) -> int:
    """Environment steps covered by ``horizon`` rows ``jump`` steps apart: ``(H - 1) k + 1``."""
    return (horizon - 1) * jump + 1


def interpolate_rows(rows: jax.Array, jump: int) -> jax.Array:
    """``[..., H, D]`` rows ``jump`` steps apart -> ``[..., (H - 1) jump + 1, D]`` one per step,
    linear between consecutive rows (the rows themselves kept); identity for ``jump == 1``."""
    if jump == 1:
        return rows
    fraction = jnp.arange(jump, dtype=rows.dtype)[:, None] / jump  # [k, 1]
    before, after = rows[..., :-1, None, :], rows[..., 1:, None, :]  # [..., H - 1, 1, D]
    between = before + fraction * (after - before)  # [..., H - 1, k, D]
    flat = between.reshape(*rows.shape[:-2], -1, rows.shape[-1])
    return jnp.concatenate([flat, rows[..., -1:, :]], axis=-2)


def window_indices(
    boundaries: np.ndarray, span: int, padding: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(starts [M], lasts [M])``: every valid window's first step and its episode's last step,
    for windows covering ``span`` steps."""
    starts, lasts = [], []
    for begin, end in itertools.pairwise(boundaries):
        stop = end if padding else end - span + 1
        if stop > begin:
            starts.append(np.arange(begin, stop))
            lasts.append(np.full(stop - begin, end - 1))
    if not starts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(starts).astype(np.int32), np.concatenate(lasts).astype(np.int32)


def discounted_returns(
    rewards: np.ndarray, episode_ends: np.ndarray, discount: float
) -> np.ndarray:
    """``[N]`` ``G[t] = r[t] + discount * G[t + 1]``, restarting after every ``episode_ends`` step.

    ``rewards`` [N] float; ``episode_ends`` [N] bool, true at the last step of each episode.
    """

    def backward(future, inputs):
        reward, is_end = inputs
        value = reward + discount * future * (1.0 - is_end)
        return value, value

    inputs = (jnp.asarray(rewards, jnp.float32), jnp.asarray(episode_ends, jnp.float32))
    _, values = jax.lax.scan(backward, jnp.float32(0.0), inputs, reverse=True)
    return np.asarray(values)


def make_window_dataset(
    episodes: Episodes,
    horizon: int,
    *,
    padding: bool = False,
    jump: int = 1,
    rest_dims: Sequence[int] = (),
    normalizer_kind: str = "limits",
    normalizer: Normalizer | None = None,
    discount: float = 0.99,
    termination_penalty: float = 0.0,
    attributes: Sequence[Attribute] = (),
    unconditional_probability: float = 0.25,
) -> WindowDataset:
    """Everything :func:`sample_windows` needs, moved to the default device once.

    The normalizer is fitted on all steps unless one is given (e.g. from a checkpoint).
    ``jump``: steps between rows (see the module docstring). ``rest_dims``: observation
    dimensions set to zero on padded rows. ``termination_penalty`` is added to the reward of
    terminal steps before discounting.
    ``attributes`` label every window (over the first observation dimensions, the positions).
    """
    span = window_span(horizon, jump)
    starts, lasts = window_indices(episodes.boundaries, span, padding)
    if len(starts) == 0:
        longest = int(episodes.episode_lengths.max())
        raise DatasetError(
            f"{episodes.name}: no episode has {span} steps (the longest has {longest}); "
            f"lower data.horizon (or data.jump) or set data.padding: true"
        )
    steps = np.concatenate([episodes.actions, episodes.observations], axis=1)
    normalizer = normalizer or fit_normalizer(steps, normalizer_kind)
    action_dim = episodes.actions.shape[1]
    rewards = episodes.rewards + termination_penalty * episodes.terminals
    episode_ends = np.zeros(episodes.n_steps, bool)
    episode_ends[episodes.boundaries[1:] - 1] = True
    dims = len(attributes[0].low) if attributes else 0
    labels = window_labels(episodes.observations[:, :dims], starts, lasts, span, attributes)
    padding_row = normalizer.normalize(np.zeros(steps.shape[1]))
    rest = np.zeros(steps.shape[1], bool)
    rest[:action_dim] = True
    rest[[action_dim + dim for dim in rest_dims]] = True
    return WindowDataset(
        transitions=jnp.asarray(normalizer.normalize(steps), jnp.float32),
        window_starts=jnp.asarray(starts),
        window_last=jnp.asarray(lasts),
        returns_to_go=jnp.asarray(discounted_returns(rewards, episode_ends, discount)),
        padding_row=jnp.asarray(padding_row, jnp.float32),
        padding_rest=jnp.asarray(rest),
        normalizer=normalizer,
        labels=jnp.asarray(labels),
        horizon=horizon,
        action_dim=action_dim,
        jump=jump,
        unconditional_probability=unconditional_probability,
    )


def gather_windows(
    dataset: WindowDataset, window_ids: jax.Array, key: jax.Array | None = None
) -> WindowBatch:
    """The windows numbered ``window_ids`` [B] (each in ``[0, M)``) as a :class:`WindowBatch`;
    ``key`` draws their attributes (none without a key)."""
    first = dataset.window_starts[window_ids]
    last = dataset.window_last[window_ids]
    steps = first[:, None] + dataset.jump * jnp.arange(dataset.horizon)[None, :]  # [B, H]
    past_end = steps > last[:, None]
    trajectories = dataset.transitions[jnp.minimum(steps, last[:, None])]  # [B, H, A + O]
    at_rest = past_end[..., None] & dataset.padding_rest
    trajectories = jnp.where(at_rest, dataset.padding_row, trajectories)
    observations = trajectories[..., dataset.action_dim :]
    return WindowBatch(
        trajectories=trajectories,
        start=observations[:, 0],
        goal=observations[:, -1],
        values=dataset.returns_to_go[first],
        attribute=draw_attributes(dataset, window_ids, key),
    )


def draw_attributes(dataset: WindowDataset, window_ids: jax.Array, key: jax.Array | None):
    """``[B]`` int32: per window one of its attributes uniformly, or ``K`` (none) with
    probability ``unconditional_probability``, when it has none, or without a ``key``."""
    labels = dataset.labels[window_ids]  # [B, K]
    none = labels.shape[1]
    if key is None or none == 0:
        return jnp.full(window_ids.shape, none, jnp.int32)
    pick_key, drop_key = jax.random.split(key)
    chosen = jax.random.categorical(pick_key, jnp.where(labels, 0.0, -jnp.inf), axis=-1)
    dropped = jax.random.uniform(drop_key, window_ids.shape) < dataset.unconditional_probability
    return jnp.where(dropped | ~labels.any(axis=1), none, chosen).astype(jnp.int32)


def sample_windows(dataset: WindowDataset, key: jax.Array, batch_size: int) -> WindowBatch:
    """``batch_size`` windows drawn uniformly with replacement, with their attributes; jit-able
    (``batch_size`` static)."""
    window_ids = jax.random.randint(key, (batch_size,), 0, dataset.window_starts.shape[0])
    return gather_windows(dataset, window_ids, jax.random.fold_in(key, 1))
