"""Batched Maze2D episodes under the D4RL protocol: plan, track the plan, collect rewards.

Episodes run in batches: one planner call plans for the whole batch and the batch's simulators
step in lockstep. A plan is followed with Diffuser's tracking controller
``action = (p[t+1] - pos) + (v[t+1] - vel)`` on the plan's next state; after the plan ends the
target is its last position at rest. Episode ``i`` draws its start (and Multi2D goal) from its
own seed and its plans from its own key, so results do not depend on how episodes are batched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from planner.energies.terms import Layout
from planner.envs.maze2d import Maze2DEnv, MazeTask, Obstacle
from planner.planning.planner import shift_plan

# plan_fn(episodes [B] int, observations [B, O], goals [B, P], previous [B, H, D] or None,
#         replan index) -> trajectories [B, H, D] in environment units
PlanFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int], np.ndarray]


def episode_seed(seed: int, episode: int) -> int:
    """The simulator seed of episode ``episode`` of an evaluation seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class Rollouts:
    """``N`` finished episodes of ``T`` steps.

    ``episodes`` [N] indices; ``rewards`` [N, T]; ``observations`` [N, T + 1, O]; ``goals``
    [N, P]; ``first_plans`` [N, H, D] the plan made at the start of each episode; ``contacts``
    [N, T] bool, whether the point mass touched an added obstacle after each step;
    ``plan_seconds`` [N] each episode's share of the wall time of its batch's planner calls.
    """

    episodes: np.ndarray
    rewards: np.ndarray
    observations: np.ndarray
    goals: np.ndarray
    first_plans: np.ndarray
    contacts: np.ndarray
    plan_seconds: np.ndarray

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
                  "plan_seconds")  # fmt: skip
        return Rollouts(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def tracking_actions(
    states: np.ndarray, observations: np.ndarray, steps: np.ndarray | int, layout: Layout
) -> np.ndarray:
    """``[B, 2]`` actions following plans ``states`` [B, H, O] (observations only) from
    ``observations`` [B, O] at plan step ``steps`` [B] (or one int for all)."""
    batch, horizon = states.shape[:2]
    following = np.broadcast_to(np.asarray(steps) + 1, (batch,))
    target = states[np.arange(batch), np.minimum(following, horizon - 1)]
    position, velocity = list(layout.position), list(layout.velocity)
    target_velocity = np.where((following >= horizon)[:, None], 0.0, target[:, velocity])
    position_error = target[:, position] - observations[:, position]
    return position_error + target_velocity - observations[:, velocity]


def run_episodes(
    task: MazeTask,
    plan_fn: PlanFn,
    layout: Layout,
    episodes: Sequence[int],
    seed: int,
    multi_task: bool = False,
    replan_every: int = 0,
    obstacles: Sequence[Obstacle] = (),
    start: Sequence[float] | None = None,
) -> Rollouts:
    """Run ``episodes`` together: plan at the start (and every ``replan_every`` steps if > 0,
    passing the previous plan shifted by the executed steps), track, step every simulator.
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
    plans = first_plans = plan_fn(ids, observation, goals, None, 0)
    plan_seconds = time.perf_counter() - began
    plan_began = 0
    for step in range(steps):
        if replan_every and step > 0 and step % replan_every == 0:
            previous = shift_plan(plans, step - plan_began)
            began = time.perf_counter()
            plans = plan_fn(ids, observation, goals, previous, step // replan_every)
            plan_seconds += time.perf_counter() - began
            plan_began = step
        states = plans[..., layout.action_dim :]
        actions = tracking_actions(states, observation, step - plan_began, layout)
        for index, env in enumerate(envs):
            observation[index], rewards[index, step], _, _, info = env.step(actions[index])
            contacts[index, step] = info["contact"]
        observations[:, step + 1] = observation
    shares = np.full(len(envs), plan_seconds / len(envs))
    return Rollouts(ids, rewards, observations, goals, np.asarray(first_plans), contacts, shares)
