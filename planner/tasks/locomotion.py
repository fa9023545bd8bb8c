"""D4RL locomotion tasks: Hopper, Walker2d and HalfCheetah on Gymnasium's MuJoCo ``-v5``
simulators.

D4RL bodies: observations have D4RL ``-v2``'s layout: ``qpos[1:]`` (the x position left out)
followed by ``qvel`` (clipped to [-10, 10] for Hopper and Walker2d), 11 / 17 / 17 numbers. What
differs from the mujoco-py ``-v3`` simulators D4RL recorded its data on: MuJoCo 3 instead of 2.x
(contact solver details), and in ``Walker2d-v5`` both feet have friction 0.9 (``-v3`` gave the
left foot 1.9 by mistake). Rewards, termination rules, reset noise, frame skip and episode length
(1,000 steps) are the same. Dataset names follow D4RL: ``<env>-<kind>-v2`` with kind ``medium``,
``medium-replay``, ``expert`` or ``medium-expert``.

Any other registered Gymnasium environment is a :class:`LocomotionTask` too, without D4RL
references: :mod:`planner.tasks.gym`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from planner.tasks.base import file_stem, normalized_score

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
    def family(self) -> str:
        """``locomotion`` for a D4RL body, ``gym`` for a user's own environment."""
        return "locomotion" if LOCOMOTION_TASKS.get(self.name) == self else "gym"

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
