"""Gymnasium tasks: D4RL locomotion (Hopper, Walker2d, HalfCheetah) on MuJoCo ``-v5``
simulators, and any other registered Gymnasium environment a user brings with ``data.env``.

D4RL bodies: observations have D4RL ``-v2``'s layout: ``qpos[1:]`` (the x position left out)
followed by ``qvel`` (clipped to [-10, 10] for Hopper and Walker2d), 11 / 17 / 17 numbers. What
differs from the mujoco-py ``-v3`` simulators D4RL recorded its data on: MuJoCo 3 instead of 2.x
(contact solver details), and in ``Walker2d-v5`` both feet have friction 0.9 (``-v3`` gave the
left foot 1.9 by mistake). Rewards, termination rules, reset noise, frame skip and episode length
(1,000 steps) are the same. Dataset names follow D4RL: ``<env>-<kind>-v2`` with kind ``medium``,
``medium-replay``, ``expert`` or ``medium-expert``.

Any other environment (:func:`gym_task`): its dimensions and episode length are read from the
environment; it has no D4RL reference returns, so it is scored by raw returns. Datasets
``planner data generate`` makes for it are named :func:`gym_dataset_name`, e.g.
``InvertedPendulum-v5-medium-return500``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from planner.envs.maze2d import normalized_score

if TYPE_CHECKING:
    from planner.config import DataConfig

DATASET_KINDS = ("medium", "medium-replay", "expert", "medium-expert")
EPISODE_STEPS = 1000


@dataclass(frozen=True)
class LocomotionTask:
    """One Gymnasium environment: its id, dimensions, episode length and, for the D4RL bodies,
    D4RL's reference returns (``None`` for other environments)."""

    name: str  # hopper, walker2d, halfcheetah; the Gymnasium id for other environments
    gym_id: str
    observation_dim: int
    action_dim: int
    d4rl_ref_min: float | None  # D4RL's random-policy return
    d4rl_ref_max: float | None  # D4RL's expert return
    medium_return: float | None  # the behaviour return at which a "medium" policy is taken
    max_episode_steps: int = EPISODE_STEPS

    @property
    def has_d4rl_references(self) -> bool:
        return self.d4rl_ref_min is not None and self.d4rl_ref_max is not None

    @property
    def file_stem(self) -> str:
        """``name`` usable in a file name (a namespaced or ``module:`` id has ``/`` or ``:``)."""
        return file_stem(self.name)

    def make_env(self) -> gym.Env:
        """A fresh simulator, limited to ``max_episode_steps``."""
        with _without_settotalmass_notice():
            return gym.make(self.gym_id, max_episode_steps=self.max_episode_steps)

    def normalized(self, returns: np.ndarray | float) -> np.ndarray:
        """D4RL normalized score of ``returns``; a ``ValueError`` for a task without D4RL
        references (see :attr:`has_d4rl_references`)."""
        if not self.has_d4rl_references:
            raise ValueError(f"{self.name}: no D4RL reference returns to normalize by")
        return normalized_score(returns, self.d4rl_ref_min, self.d4rl_ref_max)


@contextlib.contextmanager
def _without_settotalmass_notice() -> Iterator[None]:
    """MuJoCo warns at every compile of Gymnasium's HalfCheetah model that its ``settotalmass``
    attribute is deprecated (once per simulator, hundreds of lines in a data generation); drop
    that one notice while a simulator is made and print every other MuJoCo warning as usual."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def warn(message: str) -> None:
        if "settotalmass" in message:
            return
        if previous is None:
            print(f"WARNING: {message}", file=sys.stderr)
        else:
            previous(message)

    mujoco.set_mju_user_warning(warn)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


# medium_return: one third of D4RL's expert return (D4RL's recipe for its "medium" policies).
LOCOMOTION_TASKS: dict[str, LocomotionTask] = {
    task.name: task
    for task in (
        LocomotionTask("hopper", "Hopper-v5", 11, 3, -20.272305, 3234.3, 3234.3 / 3),
        LocomotionTask("walker2d", "Walker2d-v5", 17, 6, 1.629008, 4592.3, 4592.3 / 3),
        LocomotionTask("halfcheetah", "HalfCheetah-v5", 17, 6, -280.178953, 12135.0, 12135.0 / 3),
    )
}


def parse_dataset_name(name: str) -> tuple[LocomotionTask, str]:
    """``(task, kind)`` of a D4RL locomotion name such as ``hopper-medium-replay-v2``; a
    ``ValueError`` naming the known bodies and kinds otherwise."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".hdf5").removesuffix("-v2")
    body, _, kind = stem.partition("-")
    if body not in LOCOMOTION_TASKS or kind not in DATASET_KINDS:
        raise ValueError(
            f"{name!r} is not a locomotion dataset name; expected <body>-<kind>-v2 with body in "
            f"{', '.join(LOCOMOTION_TASKS)} and kind in {', '.join(DATASET_KINDS)}"
        )
    return LOCOMOTION_TASKS[body], kind


def find_locomotion_task(name: str) -> LocomotionTask | None:
    """The locomotion body a dataset name, path or Minari id (``mujoco/hopper/medium-v0``)
    refers to, if any: the last ``/``-separated part that starts with a body's name."""
    for part in reversed(name.lower().split("/")):
        task = next((t for body, t in LOCOMOTION_TASKS.items() if part.startswith(body)), None)
        if task is not None:
            return task
    return None


def locomotion_dataset_names() -> tuple[str, ...]:
    """Every ``<body>-<kind>-v2`` name ``planner data generate`` knows."""
    return tuple(f"{body}-{kind}-v2" for body in LOCOMOTION_TASKS for kind in DATASET_KINDS)


# --- any registered Gymnasium environment ---------------------------------------------------


def file_stem(name: str) -> str:
    """``name`` with the characters a file name cannot hold (``/``, ``:``) replaced by ``_``."""
    return name.replace("/", "_").replace(":", "_")


def check_env_id(env_id: str) -> None:
    """A ``ValueError`` (with the closest registered ids) unless ``env_id`` is registered in
    Gymnasium. ``module:Env-v0`` first imports ``module`` (Gymnasium's convention for packages
    that register environments on import)."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"{env_id!r}: cannot import {module!r} ({error})") from None
    if name not in gym.envs.registry:
        close = difflib.get_close_matches(name, list(gym.envs.registry), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see gymnasium.pprint_registry()"
        raise ValueError(f"{env_id!r} is not a registered Gymnasium environment id; {hint}")


@functools.cache
def gym_task(env_id: str) -> LocomotionTask:
    """A task for any registered Gymnasium environment, named by its id: observation and action
    dimensions from its (flat ``Box``) spaces, episode length from its time limit (1,000 steps
    if it has none), no D4RL references. A ``ValueError`` for an unknown id or other spaces."""
    check_env_id(env_id)
    env = gym.make(env_id)
    observation_space, action_space = env.observation_space, env.action_space
    steps = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    for what, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"{env_id}: planner needs flat Box observation and action spaces; its "
                f"{what} space is {space}"
            )
    return LocomotionTask(
        name=env_id,
        gym_id=env_id,
        observation_dim=observation_space.shape[0],
        action_dim=action_space.shape[0],
        d4rl_ref_min=None,
        d4rl_ref_max=None,
        medium_return=None,
        max_episode_steps=steps or EPISODE_STEPS,
    )


def config_task(data: DataConfig) -> LocomotionTask | None:
    """The task a run with this data config is evaluated in: ``data.env`` if set (a D4RL body's
    task, with its references, when it names that body's simulator), else the locomotion body
    ``data.dataset`` names; ``None`` when neither applies (Maze2D)."""
    if data.env is not None:
        known = (task for task in LOCOMOTION_TASKS.values() if task.gym_id == data.env)
        return next(known, None) or gym_task(data.env)
    return find_locomotion_task(data.dataset)


def gym_dataset_name(env_id: str, kind: str, stop_return: float | None) -> str:
    """The name of a dataset ``planner data generate`` makes for ``env_id``:
    ``<env_id>-<kind>``, with ``-return<R>`` for the kinds of a medium policy stopped at R."""
    if kind not in DATASET_KINDS:
        raise ValueError(f"kind must be one of {', '.join(DATASET_KINDS)}; got {kind!r}")
    if "medium" not in kind:
        return f"{env_id}-{kind}"
    if stop_return is None:
        raise ValueError(f"{env_id}: kind {kind} needs the medium policy's stop return")
    return f"{env_id}-{kind}-return{stop_return:g}"


def parse_gym_dataset_name(name: str, env_id: str) -> tuple[str, float | None]:
    """``(kind, stop_return)`` of a :func:`gym_dataset_name` of ``env_id``; a ``ValueError``
    saying the expected form otherwise."""
    pattern = rf"{re.escape(env_id)}-({'|'.join(DATASET_KINDS)})(?:-return(-?[0-9.e+]+))?"
    match = re.fullmatch(pattern, name)
    if match is not None:
        kind, stop_return = match[1], match[2]
        needs_return = "medium" in kind
        if needs_return == (stop_return is not None):
            try:
                return kind, float(stop_return) if stop_return else None
            except ValueError:
                pass
    raise ValueError(
        f"{name!r} is not a dataset name for {env_id}; expected {env_id}-<kind>-return<R> for "
        f"kind medium, medium-replay or medium-expert, {env_id}-expert for expert"
    )
