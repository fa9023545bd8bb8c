"""D4RL locomotion (Hopper, Walker2d, HalfCheetah) on Gymnasium's MuJoCo ``-v5`` simulators.

Observations have D4RL ``-v2``'s layout: ``qpos[1:]`` (the x position left out) followed by
``qvel`` (clipped to [-10, 10] for Hopper and Walker2d), 11 / 17 / 17 numbers. What differs from
the mujoco-py ``-v3`` simulators D4RL recorded its data on: MuJoCo 3 instead of 2.x (contact
solver details), and in ``Walker2d-v5`` both feet have friction 0.9 (``-v3`` gave the left foot
1.9 by mistake). Rewards, termination rules, reset noise, frame skip and episode length (1,000
steps) are the same.

Dataset names follow D4RL: ``<env>-<kind>-v2`` with kind ``medium``, ``medium-replay``,
``expert`` or ``medium-expert``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from planner.envs.maze2d import normalized_score

DATASET_KINDS = ("medium", "medium-replay", "expert", "medium-expert")
EPISODE_STEPS = 1000


@dataclass(frozen=True)
class LocomotionTask:
    """One MuJoCo body: its Gymnasium id, dimensions and D4RL's reference returns."""

    name: str  # hopper, walker2d, halfcheetah
    gym_id: str
    observation_dim: int
    action_dim: int
    d4rl_ref_min: float  # D4RL's random-policy return
    d4rl_ref_max: float  # D4RL's expert return
    medium_return: float  # the behaviour return at which a "medium" policy is taken
    max_episode_steps: int = EPISODE_STEPS

    def make_env(self) -> gym.Env:
        """A fresh simulator, limited to ``max_episode_steps``."""
        return gym.make(self.gym_id, max_episode_steps=self.max_episode_steps)

    def normalized(self, returns: np.ndarray | float) -> np.ndarray:
        """D4RL normalized score of ``returns``."""
        return normalized_score(returns, self.d4rl_ref_min, self.d4rl_ref_max)


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
    """The locomotion body a dataset name or path refers to, if any."""
    base = name.rsplit("/", 1)[-1].lower()
    return next((task for body, task in LOCOMOTION_TASKS.items() if base.startswith(body)), None)


def locomotion_dataset_names() -> tuple[str, ...]:
    """Every ``<body>-<kind>-v2`` name ``planner data generate`` knows."""
    return tuple(f"{body}-{kind}-v2" for body in LOCOMOTION_TASKS for kind in DATASET_KINDS)
