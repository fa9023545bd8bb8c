"""Batched Maze2D episodes: a policy acts, every simulator of the batch steps in lockstep.

Episodes run in batches: the policy (``planner.control.policies``) plans for the whole batch
and acts for every episode at every step. Episode ``i`` draws its start (and Multi2D goal) from
its own seed and its plans from its own key, so results do not depend on how episodes are
batched. Under the D4RL protocol the policy is open loop: one plan per episode, tracked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.control.policies import Policy
from planner.tasks.maze2d import Maze2DEnv, MazeTask, Obstacle


def episode_seed(seed: int, episode: int) -> int:
    """The simulator seed of episode ``episode`` of an evaluation seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class Rollouts:
    """``N`` finished episodes of ``T`` steps.

    ``episodes`` [N] indices; ``rewards`` [N, T]; ``observations`` [N, T + 1, O]; ``goals``
    [N, P]; ``first_plans`` [N, H, D] the plan made at the start of each episode; ``contacts``
    [N, T] bool, whether the point mass touched an added obstacle after each step;
    ``plan_seconds`` [N] each episode's share of the wall time of its batch's policy calls
    (planning and acting); ``replans`` [N] plans made after the first; ``feasible`` [N]
    whether the policy found a route from start to goal (it holds the start where it did not).
    """

    episodes: np.ndarray
    rewards: np.ndarray
    observations: np.ndarray
    goals: np.ndarray
    first_plans: np.ndarray
    contacts: np.ndarray
    plan_seconds: np.ndarray
    replans: np.ndarray
    feasible: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """``[N]`` undiscounted returns."""
        return self.rewards.sum(axis=1)

    @property
    def success(self) -> np.ndarray:
        """``[N]`` bool: the goal was reached at least once."""
        return self.rewards.any(axis=1)

    @property
    def time_to_goal(self) -> np.ndarray:
        """``[N]`` steps until the first reward (1-based); NaN where the goal was never reached."""
        first = np.argmax(self.rewards > 0, axis=1) + 1.0
        return np.where(self.success, first, np.nan)

    @staticmethod
    def concatenate(parts: Sequence[Rollouts]) -> Rollouts:
        fields = ("episodes", "rewards", "observations", "goals", "first_plans", "contacts",
                  "plan_seconds", "replans", "feasible")  # fmt: skip
        return Rollouts(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def run_episodes(
    task: MazeTask,
    policy: Policy,
    episodes: Sequence[int],
    seed: int,
    multi_task: bool = False,
    obstacles: Sequence[Obstacle] = (),
    start: Sequence[float] | None = None,
) -> Rollouts:
    """Run ``episodes`` together under ``policy``, stepping every simulator each step.
    ``obstacles`` and ``start`` are passed to each :class:`Maze2DEnv`."""
    envs = [Maze2DEnv(task, multi_task, obstacles, start) for _ in episodes]
    resets = [env.reset(seed=episode_seed(seed, i)) for env, i in zip(envs, episodes, strict=True)]
    ids = np.asarray(episodes)
    observation = np.stack([obs for obs, _ in resets])
    goals = np.stack([info["goal"] for _, info in resets])
    steps = task.max_episode_steps
    observations = np.zeros((len(envs), steps + 1, observation.shape[1]))
    rewards = np.zeros((len(envs), steps))
    contacts = np.zeros((len(envs), steps), bool)
    observations[:, 0] = observation
    began = time.perf_counter()
    state = policy.init(ids, observation, goals)
    first_plans = state.plans
    policy_seconds = time.perf_counter() - began
    for step in range(steps):
        began = time.perf_counter()
        actions, state, _ = policy.act(state, observation)
        policy_seconds += time.perf_counter() - began
        for index, env in enumerate(envs):
            observation[index], rewards[index, step], _, _, info = env.step(actions[index])
            contacts[index, step] = info["contact"]
        observations[:, step + 1] = observation
    shares = np.full(len(envs), policy_seconds / len(envs))
    return Rollouts(
        ids, rewards, observations, goals, np.asarray(first_plans), contacts, shares,
        state.replans, state.feasible,
    )  # fmt: skip
