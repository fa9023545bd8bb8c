"""Locomotion evaluation: the locomotion policies, batched MuJoCo episodes under them
(:func:`planner.eval.rollouts.run_episodes`, which stops an episode when the body falls), and
their scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.config import Config, ConfigError
from planner.control.policies import (
    Policy,
    feedback_policy,
    plan_action_policy,
    planner_plan_fn,
)
from planner.energies.base import SATISFIED, violations
from planner.energies.terms import CONSTRAINT_TYPES, terms_from_specs
from planner.eval.rollouts import Rollouts, run_episodes
from planner.eval.scores import mean_and_stderr
from planner.planning.build import build_planner, related_run_dir
from planner.planning.planner import constraints_at
from planner.planning.run import TrainedRun, load_run
from planner.tasks.base import normalized_score
from planner.tasks.locomotion import LocomotionTask


def mlp_act_fn(run: TrainedRun, apply: Callable[..., jax.Array]) -> Callable[..., np.ndarray]:
    """``apply(params, *observations [B, O]) -> actions [B, A]`` of an MLP run (normalized on
    both sides) as ``act(*observations) -> actions`` in environment units (the run's
    normalizer on both sides)."""
    jitted, action_dim = jax.jit(apply), run.layout.action_dim
    shift, scale = np.asarray(run.normalizer.shift), np.asarray(run.normalizer.scale)

    def act(*observations: np.ndarray) -> np.ndarray:
        normalized = [
            ((obs - shift[action_dim:]) / scale[action_dim:]).astype(np.float32)
            for obs in observations
        ]
        actions = np.asarray(jitted(run.params, *normalized))
        return actions * scale[:action_dim] + shift[:action_dim]

    return act


def make_locomotion_policy(run: TrainedRun, config: Config) -> Policy:
    """The behaviour-cloning policy of a ``bc`` run, or for a diffusion run the value-guided
    receding-horizon planner of ``config.plan``, replanning every ``eval.replan_every`` steps
    (every step when 0: Diffuser's protocol), warm-starting as ``eval`` says and acting with
    the inverse-dynamics run ``plan.inverse_dynamics`` names, if any."""
    if run.kind == "bc":
        return feedback_policy(mlp_act_fn(run, run.bc_apply()))
    settings, plan = config.eval, config.plan
    if settings.policy == "route":
        raise ConfigError("eval.policy route follows a maze's shortest route: Maze2D tasks only")
    planner = build_planner(run, config, task=None)[0]
    warm_level = settings.warm_start_level if settings.policy == "mpc" else None
    plan_fn = planner_plan_fn(
        {0: planner}, warm_level, plan.seed, plan.n_candidates, False, plan.average_best
    )
    every = settings.replan_every if settings.policy == "mpc" else run.config.data.horizon
    inverse_dynamics = None
    if plan.inverse_dynamics is not None:
        inverse = load_run(related_run_dir(plan.inverse_dynamics, run.run_dir))
        inverse_dynamics = mlp_act_fn(inverse, inverse.inverse_dynamics_apply())
    return plan_action_policy(plan_fn, run.layout.action_dim, max(every, 1), inverse_dynamics)


def evaluate_locomotion(
    run: TrainedRun, config: Config, task: LocomotionTask, show_progress: bool = True
) -> Rollouts:
    """All ``config.eval.episodes`` episodes, ``config.eval.batch_size`` at a time."""
    settings = config.eval
    policy = make_locomotion_policy(run, config)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    parts: list[Rollouts] = []
    total = settings.episodes * task.max_episode_steps
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(f"eval {task.name}: episode steps", total=total)
        for first in range(0, settings.episodes, settings.batch_size):
            episodes = range(first, min(first + settings.batch_size, settings.episodes))
            envs = [task.make_env() for _ in episodes]
            rollouts = run_episodes(
                envs, policy, episodes, settings.seed, task.max_episode_steps,
                lambda stepped: progress.advance(bar, stepped),
            )  # fmt: skip
            parts.append(rollouts)
            total -= int((task.max_episode_steps - rollouts.lengths).sum())  # ended early
            mean_return = np.concatenate([part.returns for part in parts]).mean()
            if task.has_d4rl_references:
                shown = f"score {task.normalized(mean_return):.1f}"
            else:
                shown = f"return {mean_return:.1f}"
            progress.update(bar, total=total, description=f"eval {task.name}: {shown}")
    return Rollouts.concatenate(parts)


def locomotion_summary(
    rollouts: Rollouts, task: LocomotionTask, references: dict[str, Any] | None
) -> dict[str, Any]:
    """Returns, episode lengths, falls, decisions per second, and normalized scores under
    D4RL's references (``normalized_d4rl``, for tasks that have them) and, where the expert one
    is known, references recomputed on this simulator (``normalized_this_simulator``).
    ``references`` (this simulator's, with ``ref_min`` the random policy's return) are stored
    as ``references_this_simulator`` whenever given."""
    returns = rollouts.returns
    decisions = int(rollouts.lengths.sum())
    seconds = float(rollouts.policy_seconds.sum())
    summary: dict[str, Any] = {
        "episodes": len(returns),
        "return": mean_and_stderr(returns),
        "length": mean_and_stderr(rollouts.lengths),
        "terminated": int(rollouts.terminated.sum()),
        "replans_per_episode": mean_and_stderr(rollouts.replans),
        "policy_seconds_per_episode": mean_and_stderr(rollouts.policy_seconds),
        "decisions_per_second": round(decisions / seconds, 2) if seconds > 0 else None,
    }
    if task.has_d4rl_references:
        summary["normalized_d4rl"] = mean_and_stderr(task.normalized(returns))
    if references is not None:
        if references.get("ref_max") is not None:
            summary["normalized_this_simulator"] = mean_and_stderr(
                normalized_score(returns, references["ref_min"], references["ref_max"])
            )
        summary["references_this_simulator"] = references
    return summary


def executed_constraints(
    run: TrainedRun, constraints: Sequence[Mapping[str, Any]], rollouts: Rollouts
) -> list[dict[str, Any]]:
    """Per entry of ``plan.constraints`` (wherever it appears): on how many episodes the
    executed observations held it at every step, and the largest violation (the constraint's
    own units, on ``data.position_dims`` / ``velocity_dims``) averaged over episodes."""
    specs = constraints_at(constraints, rollouts.observations.shape[1])
    terms = terms_from_specs(specs, run.layout, CONSTRAINT_TYPES, "plan.constraints")
    observations = rollouts.observations  # [N, T + 1, O], the last one repeated after the end
    actions = np.zeros((*observations.shape[:2], run.layout.action_dim), np.float32)
    rows = jnp.asarray(np.concatenate([actions, observations], axis=-1), jnp.float32)
    worst = np.asarray(violations(terms, rows))  # [N, C]
    return [
        {
            "constraint": f"plan.constraints[{index}] ({spec['type']})",
            "episodes_held": int((worst[:, index] <= SATISFIED).sum()),
            "max_violation": mean_and_stderr(worst[:, index]),
        }
        for index, spec in enumerate(specs)
    ]


def random_policy_returns(task: LocomotionTask, episodes: int = 100, seed: int = 0) -> np.ndarray:
    """``[episodes]`` returns of uniformly random actions on this simulator (the lower
    reference of a normalized score), episode ``i`` reset from :func:`episode_seed`."""
    rng = np.random.default_rng(seed)
    space = task.make_env().action_space
    low, high = space.low, space.high

    def act(observations: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, (len(observations), task.action_dim))

    envs = [task.make_env() for _ in range(episodes)]
    policy = feedback_policy(act)
    return run_episodes(envs, policy, range(episodes), seed, task.max_episode_steps).returns
