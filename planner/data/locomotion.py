"""Regeneration of D4RL's locomotion datasets (``<body>-<kind>-v2``) with CrossQ behaviour policies,
and datasets made the same way for any Gymnasium environment (:func:`generate_gym_dataset`).

D4RL's recipe, on this project's simulators (:mod:`planner.tasks.locomotion`):

- *medium*: ``steps`` transitions of a policy whose training was stopped when its evaluation
  return reached one third of the expert return (``task.medium_return``);
- *medium-replay*: that policy's replay buffer up to the stopping point (every transition it
  trained on, the random warm-up included);
- *expert*: ``steps`` transitions of a policy trained for ``expert_train_steps`` steps;
- *medium-expert*: the medium and the expert datasets concatenated (``2 * steps``).

Rollouts use the stochastic policy (sampled actions), episodes of at most 1,000 steps, several
simulators stepped together under one jitted policy call. The policies (and the medium replay
buffer) are saved next to the dataset as ``<body>-<level>-seed<seed>.policy.npz`` (and
``<body>-medium-seed<seed>.replay.npz``), so other kinds, sizes or seeds of collection reuse them
instead of training again. For another environment ``<body>`` is its id (file-safe), and the
medium policy's files also carry its stop return: ``InvertedPendulum-v5-return500-medium-seed0``.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from planner.data.behaviour import (
    REPLAY_KEYS,
    Episode,
    evaluate,
    load_policy,
    load_replay,
    make_act,
    policy_fn,
    save_policy,
    save_replay,
    stream_episodes,
    to_env_actions,
    train_behaviour,
)
from planner.data.d4rl import write_hdf5
from planner.data.episodes import boundaries_from_flags
from planner.provenance import git_revision
from planner.tasks.gym import gym_dataset_name, gym_task
from planner.tasks.locomotion import LOCOMOTION_TASKS, LocomotionTask, parse_dataset_name

LOCOMOTION_STEPS = 1_000_000  # default size of a collected dataset (per level)
MEDIUM_MAX_TRAIN_STEPS = 1_000_000  # give up on reaching the medium return after this many
# CrossQ's return can jump from a third to most of the expert's within 5,000 steps (Hopper:
# 230 -> 3,060 between 35k and 40k), so the medium policy is evaluated often.
MEDIUM_EVAL_EVERY = 1_000
# D4RL's experts are SAC policies trained 1M steps. CrossQ is far more sample-efficient (a third of
# the expert return within 30-50k steps here), and 300k steps take about 25 min per body on a 2-core
# CPU. Each policy's evaluation curve is saved with it (``history`` in its .policy.npz), so
# whether it has levelled off can be read.
EXPERT_TRAIN_STEPS = 300_000
COLLECT_ENVS = 32
LEVELS = ("medium", "expert")
KIND_LEVELS = {"medium": ("medium",), "expert": ("expert",), "medium-expert": LEVELS}


def policy_path(directory: Path, body: str, level: str, seed: int) -> Path:
    """The saved behaviour policy of ``body`` at ``level`` (medium / expert) for ``seed``."""
    return Path(directory) / f"{body}-{level}-seed{seed}.policy.npz"


def replay_path(directory: Path, body: str, seed: int) -> Path:
    """The saved replay buffer of the medium policy's training."""
    return Path(directory) / f"{body}-medium-seed{seed}.replay.npz"


def _file_body(task: LocomotionTask, level: str) -> str:
    """``<body>`` of a behaviour policy's files: a D4RL body's name, else the environment id
    (file-safe) with, for the medium policy, the return it was stopped at."""
    if LOCOMOTION_TASKS.get(task.name) == task:
        return task.name
    suffix = f"-return{task.medium_return:g}" if level == "medium" else ""
    return f"{task.file_stem}{suffix}"


def behaviour_policy(
    task: LocomotionTask,
    level: str,
    seed: int,
    directory: Path,
    expert_train_steps: int = EXPERT_TRAIN_STEPS,
    show_progress: bool = True,
) -> tuple[Any, Any, dict[str, Any]]:
    """``(actor_params, config, metadata)`` of the ``level`` policy, trained (and saved, with
    the medium replay buffer) unless its files already exist. The medium policy trains from seed
    ``2 * seed``, the expert one from ``2 * seed + 1``."""
    body = _file_body(task, level)
    path = policy_path(directory, body, level, seed)
    train_seed = seed * len(LEVELS) + LEVELS.index(level)
    needs_replay = level == "medium" and not replay_path(directory, body, seed).is_file()
    if not path.is_file() or needs_replay:
        if level == "medium":
            if task.medium_return is None:
                raise ValueError(f"{task.name}: a medium policy needs a stop return")
            run = train_behaviour(
                task,
                train_seed,
                max_steps=MEDIUM_MAX_TRAIN_STEPS,
                stop_return=task.medium_return,
                eval_every=MEDIUM_EVAL_EVERY,
                show_progress=show_progress,
            )
            save_replay(replay_path(directory, body, seed), run.replay)
        else:
            run = train_behaviour(
                task, train_seed, max_steps=expert_train_steps, show_progress=show_progress
            )
        save_policy(path, run)
    return load_policy(path)


def expert_returns(
    task: LocomotionTask, directory: Path, episodes: int = 100, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """``(returns [episodes], metadata)`` of the saved seed-0 expert behaviour policy of
    ``task`` in ``directory``, actions sampled as when it collects data (this simulator's
    expert reference return); None when no expert policy has been trained there."""
    path = policy_path(directory, _file_body(task, "expert"), "expert", 0)
    if not path.is_file():
        return None
    actor, config, metadata = load_policy(path)
    act = make_act(config, task.action_dim)
    returns, _ = evaluate(task, act, actor, episodes, seed, deterministic=False)
    return returns, metadata


def collect(
    task: LocomotionTask,
    act: Callable[..., jax.Array],
    actor_params: Any,
    steps: int,
    seed: int,
    n_envs: int = COLLECT_ENVS,
    advance: Callable[[int], None] = lambda n: None,
) -> dict[str, np.ndarray]:
    """``steps`` transitions of the sampled policy, D4RL layout (``REPLAY_KEYS``, [steps, .]).

    Episodes are kept in the order they finish across the ``n_envs`` simulators; the last one is
    cut at ``steps`` and flagged as a timeout. Deterministic for ``seed``; ``advance(n)`` is told
    of every finished episode's ``n`` steps.
    """
    env_seeds = np.random.SeedSequence((seed, 2)).generate_state(n_envs)
    policy = policy_fn(act, actor_params, jax.random.key(seed), deterministic=False)
    episodes: list[Episode] = []
    total = 0
    for _, episode in stream_episodes(task, policy, env_seeds):
        episodes.append(episode)
        advance(min(episode.length, steps - total))
        total += episode.length
        if total >= steps:
            break
    arrays = {
        name: np.concatenate([getattr(e, name) for e in episodes])[:steps] for name in REPLAY_KEYS
    }
    if not arrays["terminals"][-1]:
        arrays["timeouts"][-1] = True
    return arrays


def episode_returns(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """``[E]`` undiscounted returns of the episodes delimited by ``terminals`` / ``timeouts``."""
    boundaries = boundaries_from_flags(arrays["terminals"], arrays["timeouts"])
    return np.add.reduceat(arrays["rewards"].astype(np.float64), boundaries[:-1])


def generate_locomotion(
    name: str,
    out: Path,
    steps: int = LOCOMOTION_STEPS,
    seed: int = 0,
    show_progress: bool = True,
    expert_train_steps: int = EXPERT_TRAIN_STEPS,
    n_envs: int = COLLECT_ENVS,
) -> dict[str, Any]:
    """Regenerate the locomotion dataset ``name`` (e.g. ``hopper-medium-v2``) into ``out``
    (D4RL-layout hdf5, float32 arrays; the record below as file attributes), training or reusing
    the behaviour policies stored next to it. ``steps`` is per level (medium-expert has
    ``2 * steps``) and ignored by medium-replay. Returns a record of what was made and how."""
    task, kind = parse_dataset_name(name)
    dataset = name.removesuffix(".hdf5")
    return _generate(
        task, kind, dataset, out, steps, seed, show_progress, expert_train_steps, n_envs
    )


def generate_gym_dataset(
    env_id: str,
    kind: str,
    out: Path,
    stop_return: float | None = None,
    steps: int = LOCOMOTION_STEPS,
    seed: int = 0,
    show_progress: bool = True,
    expert_train_steps: int = EXPERT_TRAIN_STEPS,
    n_envs: int = COLLECT_ENVS,
) -> dict[str, Any]:
    """A ``kind`` dataset (medium, medium-replay, expert, medium-expert) for any registered
    Gymnasium environment, made like D4RL's locomotion ones: the medium policy's training stops
    when its evaluation return reaches ``stop_return`` (needed by the kinds with a medium
    policy). Written to ``out`` (D4RL-layout hdf5); returns the record of
    :func:`generate_locomotion`, named :func:`planner.tasks.locomotion.gym_dataset_name`."""
    dataset = gym_dataset_name(env_id, kind, stop_return)
    task = dataclasses.replace(gym_task(env_id), medium_return=stop_return)
    return _generate(
        task, kind, dataset, out, steps, seed, show_progress, expert_train_steps, n_envs
    )


def _generate(
    task: LocomotionTask,
    kind: str,
    dataset: str,
    out: Path,
    steps: int,
    seed: int,
    show_progress: bool,
    expert_train_steps: int,
    n_envs: int,
) -> dict[str, Any]:
    out = Path(out)
    began = time.perf_counter()
    levels = ("medium",) if kind == "medium-replay" else KIND_LEVELS[kind]
    behaviours = {
        level: behaviour_policy(task, level, seed, out.parent, expert_train_steps, show_progress)
        for level in levels
    }
    collect_began = time.perf_counter()
    if kind == "medium-replay":
        arrays = load_replay(replay_path(out.parent, _file_body(task, "medium"), seed))
        low, high = _action_bounds(task)
        arrays["actions"] = to_env_actions(arrays["actions"], low, high).astype(np.float32)
    else:
        policies = {level: (actor, config) for level, (actor, config, _) in behaviours.items()}
        arrays = _collect_levels(task, policies, steps, seed, n_envs, show_progress)
    collect_seconds = time.perf_counter() - collect_began

    returns = episode_returns(arrays)
    metadata = [meta for _, _, meta in behaviours.values()]
    n_steps = len(arrays["rewards"])
    record = {
        "dataset": dataset,
        "env": task.gym_id,
        "kind": kind,
        "seed": seed,
        "steps": n_steps,
        "episodes": len(returns),
        "return_mean": round(float(returns.mean()), 2),
        "return_std": round(float(returns.std()), 2),
        "return_min": round(float(returns.min()), 2),
        "return_max": round(float(returns.max()), 2),
        "normalized_mean": round(float(task.normalized(returns.mean())), 2)
        if task.has_d4rl_references
        else "",
        "behaviour_steps": sum(meta["steps"] for meta in metadata),
        "behaviour_seconds": round(sum(meta["seconds"] for meta in metadata), 1),
        "behaviour_eval_return": _last_eval(metadata[-1]),
        "behaviour_reached_medium": bool(metadata[0]["reached"]) if levels[0] == "medium" else "",
        "collect_seconds": round(collect_seconds, 1),
        "collect_steps_per_second": round(n_steps / collect_seconds)
        if kind != "medium-replay"
        else "",
        "generate_seconds": round(time.perf_counter() - began, 1),
        "git_revision": git_revision(),
        "machine": platform.platform(),
    }
    write_hdf5(out, arrays, attrs=record)
    return record


def _collect_levels(
    task: LocomotionTask,
    policies: dict[str, tuple[Any, Any]],
    steps: int,
    seed: int,
    n_envs: int,
    show_progress: bool,
) -> dict[str, np.ndarray]:
    """``steps`` transitions of each ``{level: (actor_params, config)}`` policy, concatenated in
    order; level ``l`` collects from seed ``2 * seed + index(l)``."""
    parts = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), disable=not show_progress) as progress:
        for level, (actor, config) in policies.items():
            bar = progress.add_task(f"collecting {task.name}-{level}", total=steps)
            act = make_act(config, task.action_dim)
            stream_seed = seed * len(LEVELS) + LEVELS.index(level)
            advance = functools.partial(progress.advance, bar)
            parts.append(collect(task, act, actor, steps, stream_seed, n_envs, advance))
    return {key: np.concatenate([part[key] for part in parts]) for key in REPLAY_KEYS}


def _last_eval(metadata: dict[str, Any]) -> float | str:
    """The last evaluation return a policy's training recorded ("" if it never evaluated)."""
    history = metadata["history"]
    return round(float(history[-1][1]), 1) if history else ""


def _action_bounds(task: LocomotionTask) -> tuple[np.ndarray, np.ndarray]:
    env = task.make_env()
    bounds = env.action_space.low, env.action_space.high
    env.close()
    return bounds
