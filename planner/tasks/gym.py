"""A user's own task: any registered Gymnasium environment with flat ``Box`` spaces, named by
``data.env``. Its dimensions and episode length are read from the environment; it has no D4RL
reference returns, so it is scored by raw returns. Datasets ``planner data generate`` makes for
it are named :func:`gym_dataset_name`, e.g. ``InvertedPendulum-v5-medium-return500``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re

import gymnasium as gym

from planner.tasks.locomotion import DATASET_KINDS, EPISODE_STEPS, LocomotionTask


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
