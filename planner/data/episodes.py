"""One validated structure for every dataset: flat transition arrays plus episode boundaries.

Loaders (D4RL hdf5, Minari, regenerated Maze2D) all end in :func:`make_episodes`, which checks the
arrays once and makes them read-only, so nothing downstream can modify a dataset in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.errors import PlannerError

# Observation and action sizes of the D4RL tasks, keyed by the dataset-name prefix.
TASK_DIMENSIONS: dict[str, tuple[int, int]] = {
    "maze2d": (4, 2),
    "antmaze": (29, 8),
    "hopper": (11, 3),
    "halfcheetah": (17, 6),
    "walker2d": (17, 6),
    "ant": (27, 8),
}


class DatasetError(PlannerError, ValueError):
    """A dataset file or array that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Episodes:
    """Flat per-step arrays of ``N`` steps cut into ``E`` episodes.

    ``observations`` [N, obs_dim] float32, ``actions`` [N, act_dim] float32, ``rewards`` [N]
    float32, ``terminals`` [N] bool (true environment ends), ``timeouts`` [N] bool (time limits or
    segment ends), ``boundaries`` [E + 1] int64 with episode ``i`` spanning
    ``boundaries[i]:boundaries[i + 1]``, and ``infos`` {key: [N, ...]} any other per-step arrays.
    """

    name: str
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    boundaries: np.ndarray
    infos: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return len(self.observations)

    @property
    def n_episodes(self) -> int:
        return len(self.boundaries) - 1

    @property
    def episode_lengths(self) -> np.ndarray:
        """``[E]`` steps per episode."""
        return np.diff(self.boundaries)

    @property
    def episode_returns(self) -> np.ndarray:
        """``[E]`` undiscounted return of each episode."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.boundaries[:-1])

    @property
    def episode_ids(self) -> np.ndarray:
        """``[N]`` index of the episode each step belongs to."""
        return np.repeat(np.arange(self.n_episodes), self.episode_lengths)


def make_episodes(
    name: str,
    arrays: Mapping[str, np.ndarray],
    boundaries: np.ndarray | None = None,
    expected_dims: tuple[int, int] | None = None,
) -> Episodes:
    """Validate D4RL-style ``arrays`` and ``boundaries`` [E + 1] into read-only :class:`Episodes`.

    ``arrays`` needs ``observations``, ``actions``, ``rewards``; ``terminals`` and ``timeouts``
    default to all-False; other keys (``infos/...``) are kept as infos. ``boundaries`` default to
    an episode end after every terminal or timeout flag. Raises
    :class:`DatasetError` naming ``name`` and the key on missing keys, mismatched lengths,
    non-finite values, wrong dimensions or bad boundaries.
    """
    for key in ("observations", "actions", "rewards"):
        if key not in arrays:
            found = ", ".join(sorted(arrays)) or "nothing"
            raise DatasetError(f"{name}: missing key '{key}' (found: {found})")
    n_steps = len(arrays["observations"])
    defaults = {key: np.zeros(n_steps, bool) for key in ("terminals", "timeouts")}
    arrays = {**defaults, **arrays}
    for key, value in arrays.items():
        if len(value) != n_steps:
            raise DatasetError(
                f"{name}: '{key}' has {len(value)} steps but 'observations' has {n_steps}"
            )
    observations = _float_array(name, "observations", arrays["observations"], ndim=2)
    actions = _float_array(name, "actions", arrays["actions"], ndim=2)
    rewards = _float_array(name, "rewards", arrays["rewards"], ndim=1)
    if expected_dims is not None and expected_dims != (observations.shape[1], actions.shape[1]):
        raise DatasetError(
            f"{name}: observations/actions have {observations.shape[1]}/{actions.shape[1]} "
            f"dimensions; this task needs {expected_dims[0]}/{expected_dims[1]}"
        )
    if boundaries is None:
        boundaries = boundaries_from_flags(arrays["terminals"], arrays["timeouts"])
    boundaries = np.asarray(boundaries, dtype=np.int64)
    if (
        boundaries.ndim != 1
        or len(boundaries) < 2
        or boundaries[0] != 0
        or boundaries[-1] != n_steps
        or np.any(np.diff(boundaries) <= 0)
    ):
        raise DatasetError(
            f"{name}: episode boundaries must rise strictly from 0 to {n_steps} steps"
        )
    infos = {
        key.removeprefix("infos/"): _read_only(np.asarray(value))
        for key, value in arrays.items()
        if key not in ("observations", "actions", "rewards", "terminals", "timeouts")
    }
    return Episodes(
        name=name,
        observations=_read_only(observations),
        actions=_read_only(actions),
        rewards=_read_only(rewards),
        terminals=_read_only(np.asarray(arrays["terminals"], dtype=bool)),
        timeouts=_read_only(np.asarray(arrays["timeouts"], dtype=bool)),
        boundaries=_read_only(boundaries),
        infos=infos,
    )


def _float_array(name: str, key: str, value: np.ndarray, ndim: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != ndim:
        raise DatasetError(f"{name}: '{key}' must have {ndim} dimensions; got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        step = int(np.argwhere(bad)[0][0])
        raise DatasetError(
            f"{name}: '{key}' has {int(bad.sum())} NaN/inf values (first at step {step})"
        )
    return array


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array)  # a private copy: the caller's array stays writable and untouched
    array.setflags(write=False)
    return array


def expected_dimensions(dataset_name: str) -> tuple[int, int] | None:
    """``(obs_dim, act_dim)`` of the D4RL task a dataset name refers to, if known."""
    base = dataset_name.rsplit("/", 1)[-1].lower().replace("_", "-")
    for prefix, dims in TASK_DIMENSIONS.items():
        if base.startswith(prefix):
            return dims
    return None


# --- segmentation ----------------------------------------------------------------------------


def boundaries_from_flags(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """``[E + 1]`` boundaries with an episode ending after every step flagged terminal or timeout.

    Steps after the last flag form a final, unfinished episode.
    """
    ends = np.flatnonzero(np.asarray(terminals) | np.asarray(timeouts)) + 1
    n_steps = len(terminals)
    return np.unique(np.concatenate([[0], ends, [n_steps]]))


def boundaries_leaving_goal(positions: np.ndarray, goal: np.ndarray, radius: float) -> np.ndarray:
    """``[E + 1]`` Diffuser's Maze2D re-segmentation: an episode ends at step ``t`` when the agent
    is within ``radius`` of ``goal`` at ``t`` and outside it at ``t + 1``.

    ``positions`` [N, 2]; ``goal`` [2].
    """
    at_goal = np.linalg.norm(positions - goal, axis=-1) <= radius
    leaving = np.zeros(len(positions), bool)
    leaving[:-1] = at_goal[:-1] & ~at_goal[1:]
    return boundaries_from_flags(leaving, np.zeros_like(leaving))


def resegment(episodes: Episodes, boundaries: np.ndarray) -> Episodes:
    """The same steps cut at new ``boundaries`` [E + 1] (validated like any other)."""
    arrays = {
        "observations": episodes.observations,
        "actions": episodes.actions,
        "rewards": episodes.rewards,
        "terminals": episodes.terminals,
        "timeouts": episodes.timeouts,
        **{f"infos/{key}": value for key, value in episodes.infos.items()},
    }
    return make_episodes(episodes.name, arrays, boundaries)


# --- summaries -------------------------------------------------------------------------------


def summarize(episodes: Episodes) -> dict[str, Any]:
    """Steps, episodes, and episode-length and return statistics, as plain numbers."""

    def stats(values: np.ndarray) -> dict[str, float]:
        values = np.asarray(values, dtype=np.float64)
        return {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "median": float(np.median(values)),
            "max": float(values.max()),
        }

    return {
        "name": episodes.name,
        "steps": episodes.n_steps,
        "episodes": episodes.n_episodes,
        "observation_dim": int(episodes.observations.shape[1]),
        "action_dim": int(episodes.actions.shape[1]),
        "terminals": int(episodes.terminals.sum()),
        "timeouts": int(episodes.timeouts.sum()),
        "episode_length": stats(episodes.episode_lengths),
        "episode_return": stats(episodes.episode_returns),
        "action_range": [float(episodes.actions.min()), float(episodes.actions.max())],
        "reward_mean_per_step": float(episodes.rewards.mean()),
    }
