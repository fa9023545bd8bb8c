"""Batched episodes of any task: a policy acts for a batch, every running simulator steps.

Episodes of a batch step together; one that terminates (a body falls) stops there while the
others go on. The policy (``planner.control.policies``) acts for the whole batch until at most
half of it is still running, then only for those (its state narrowed with
``PolicyState.take``): a few batch shapes to compile, no plans for episodes that have ended.
Episode ``i`` draws its start (and a goal, where the task has one) from its own seed
(:func:`episode_seed`) and its plans from its own key, so results do not depend on how
episodes are batched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from planner.control.policies import Policy


def episode_seed(seed: int, episode: int) -> int:
    """The simulator seed of episode ``episode`` of an evaluation seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class Rollouts:
    """``N`` episodes of at most ``T`` steps.

    ``episodes`` [N] indices; ``rewards`` [N, T] (zero after an episode ends);
    ``observations`` [N, T + 1, O] (the last one repeated after the end); ``lengths`` [N] steps
    taken; ``terminated`` [N] whether it ended by the task's rule (a fall), not the time limit;
    ``goals`` [N, P] (``P = 0`` for a task without goals); ``first_plans`` [N, H, D] the plan
    made at the start of each episode (``H = D = 0`` for a policy that never plans);
    ``contacts`` [N, T] bool, whether the agent touched an added obstacle after each step (the
    ``contact`` of the simulator's info; false where it has none); ``policy_seconds`` [N] each
    episode's share of the wall time of its batch's policy calls (planning and acting);
    ``replans`` [N] plans made after the first; ``feasible`` [N] whether the policy found a
    route from start to goal (it holds the start where it did not).
    """

    episodes: np.ndarray
    rewards: np.ndarray
    observations: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    goals: np.ndarray
    first_plans: np.ndarray
    contacts: np.ndarray
    policy_seconds: np.ndarray
    replans: np.ndarray
    feasible: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """``[N]`` undiscounted returns."""
        return self.rewards.sum(axis=1)

    @property
    def success(self) -> np.ndarray:
        """``[N]`` bool: the goal was reached at least once (a reward was earned)."""
        return self.rewards.any(axis=1)

    @property
    def time_to_goal(self) -> np.ndarray:
        """``[N]`` steps until the first reward (1-based); NaN where the goal was never reached."""
        first = np.argmax(self.rewards > 0, axis=1) + 1.0
        return np.where(self.success, first, np.nan)

    @staticmethod
    def concatenate(parts: Sequence[Rollouts]) -> Rollouts:
        fields = Rollouts.__dataclass_fields__
        return Rollouts(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def run_episodes(
    envs: Sequence[gym.Env],
    policy: Policy,
    episodes: Sequence[int],
    seed: int,
    steps: int,
    on_step: Callable[[int], None] = lambda stepped: None,
) -> Rollouts:
    """Run ``episodes`` together under ``policy``, episode ``episodes[i]`` in ``envs[i]``,
    until each terminates or has taken ``steps`` steps; ``on_step(stepped)`` is called after
    every step with the number of episodes that took it. A simulator's reset info may hold the
    episode's ``goal`` [P] and its step info a ``contact`` flag."""
    resets = [env.reset(seed=episode_seed(seed, i)) for env, i in zip(envs, episodes, strict=True)]
    ids = np.asarray(episodes)
    observation = np.stack([obs for obs, _ in resets])
    goals = np.stack([np.asarray(info.get("goal", ()), float) for _, info in resets])
    batch = len(envs)
    observations = np.repeat(observation[:, None].astype(float), steps + 1, axis=1)
    rewards = np.zeros((batch, steps))
    contacts = np.zeros((batch, steps), bool)
    lengths = np.zeros(batch, int)
    terminated = np.zeros(batch, bool)
    alive = np.ones(batch, bool)
    began = time.perf_counter()
    state = policy.init(ids, observation, goals)
    policy_seconds = time.perf_counter() - began
    first_plans = np.asarray(state.plans)
    replans, feasible = np.array(state.replans), np.array(state.feasible)
    acting = np.arange(batch)  # the episodes the policy's state holds, in its order
    for step in range(steps):
        if 2 * alive.sum() <= len(acting):  # narrow the policy to the running episodes
            running = np.flatnonzero(alive[acting])
            state, acting = state.take(running), acting[running]
        began = time.perf_counter()
        actions, state, _ = policy.act(state, observation[acting])
        policy_seconds += time.perf_counter() - began
        stepping = np.flatnonzero(alive[acting])
        replans[acting[stepping]] = np.asarray(state.replans)[stepping]  # counted while running
        feasible[acting[stepping]] = np.asarray(state.feasible)[stepping]
        for row in stepping:
            index = acting[row]
            obs, reward, ended, truncated, info = envs[index].step(actions[row])
            observation[index], rewards[index, step] = obs, reward
            contacts[index, step] = info.get("contact", False)
            lengths[index] = step + 1
            terminated[index] = ended
            alive[index] = not (ended or truncated)
        observations[:, step + 1] = observation
        on_step(len(stepping))
        if not alive.any():
            break
    observations[:, lengths.max() + 1 :] = observation[:, None]  # after all ended: the last
    shares = np.full(batch, policy_seconds / batch)
    return Rollouts(
        ids, rewards, observations, lengths, terminated, goals, first_plans, contacts, shares,
        replans, feasible,
    )  # fmt: skip
