"""Read and write Minari datasets as :class:`Episodes`.

Minari stores each episode with ``T + 1`` observations and ``T`` of everything else; the final
observation is dropped here so every array has one row per step. A Dict observation with an
``observation`` key (PointMaze, AntMaze) uses that key and keeps the others as infos; other Dict
observations are concatenated in key order. Only ``download=True`` ever touches the network.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import minari
import numpy as np
from minari.data_collector import EpisodeBuffer

from planner.data.episodes import DatasetError, Episodes, make_episodes
from planner.provenance import git_revision


def load_minari(
    dataset_id: str, download: bool = False, expected_dims: tuple[int, int] | None = None
) -> Episodes:
    """Load a local Minari dataset (``$MINARI_DATASETS_PATH``) into :class:`Episodes`."""
    try:
        dataset = minari.load_dataset(dataset_id, download=download)
    except (FileNotFoundError, ValueError) as error:
        where = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        hint = "" if download else "; pass --download (data.download: true) to fetch it"
        raise DatasetError(
            f"{dataset_id}: no local Minari dataset in {where} ({error}){hint}"
        ) from None
    columns: dict[str, list[np.ndarray]] = {}
    for episode in dataset.iterate_episodes():
        observations, extras = _split_observations(episode.observations, dataset_id)
        step_arrays = {
            "observations": observations[:-1],
            "actions": np.asarray(episode.actions),
            "rewards": np.asarray(episode.rewards),
            "terminals": np.asarray(episode.terminations, dtype=bool),
            "timeouts": np.asarray(episode.truncations, dtype=bool),
            **{f"infos/{key}": value[:-1] for key, value in extras.items()},
        }
        for key, value in step_arrays.items():
            columns.setdefault(key, []).append(value)
    if not columns:
        raise DatasetError(f"{dataset_id}: the Minari dataset has no episodes")
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    lengths = [len(part) for part in columns["rewards"]]
    boundaries = np.concatenate([[0], np.cumsum(lengths)])
    return make_episodes(f"minari:{dataset_id}", arrays, boundaries, expected_dims)


def _split_observations(observations: Any, dataset_id: str) -> tuple[np.ndarray, dict]:
    """``[T + 1, obs_dim]`` observations and ``{key: [T + 1, ...]}`` extra Dict entries."""
    if not isinstance(observations, dict):
        return np.asarray(observations), {}
    if "observation" in observations:
        extras = {k: np.asarray(v) for k, v in observations.items() if k != "observation"}
        return np.asarray(observations["observation"]), extras
    parts = [
        np.asarray(observations[key]).reshape(len(observations[key]), -1)
        for key in sorted(observations)
    ]
    if not parts:
        raise DatasetError(f"{dataset_id}: empty Dict observation")
    return np.concatenate(parts, axis=1), {}


def write_minari(
    episodes: Episodes, dataset_id: str, env_id: str, description: str, algorithm: str
) -> Any:
    """Create a local Minari dataset holding ``episodes``, recorded as collected in the
    registered Gymnasium env ``env_id`` (e.g. ``planner/maze2d-umaze-v1``) by the policy named
    ``algorithm``.

    The ``T + 1``-th observation of an episode is the next episode's first observation when the
    stream is continuous (as in regenerated Maze2D), else a repeat of the last one.
    """
    observations = episodes.observations
    buffer = []
    for start, end in itertools.pairwise(episodes.boundaries):
        final = observations[min(end, len(observations) - 1)]
        buffer.append(
            EpisodeBuffer(
                observations=np.concatenate([observations[start:end], final[None]]),
                actions=episodes.actions[start:end],
                rewards=episodes.rewards[start:end],
                terminations=episodes.terminals[start:end],
                truncations=episodes.timeouts[start:end],
            )
        )
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffer,
        env=env_id,
        eval_env=env_id,
        algorithm_name=algorithm,
        author="planner",
        author_email="planner@localhost",
        code_permalink=f"planner@{git_revision()}",
        description=description,
    )
