"""Task families, and the one place that maps a dataset (and ``data.env``) to its task.

A task is what a run is evaluated in: its simulator, dimensions, episode length, reference
returns and, for Maze2D, its walls. Each family is one module:

- :mod:`planner.tasks.maze2d`: D4RL's Maze2D on Gymnasium-Robotics PointMaze (``MazeTask``);
- :mod:`planner.tasks.locomotion`: D4RL's Hopper, Walker2d and HalfCheetah (``LocomotionTask``);
- :mod:`planner.tasks.ogbench`: OGBench's point-mass mazes (``OGBenchMazeTask``);
- :mod:`planner.tasks.gym`: any registered Gymnasium environment a user names with ``data.env``.

Every task has a ``family`` (``maze2d``, ``locomotion``, ``ogbench``, ``gym``); code above this
package asks :func:`get_task` for a dataset's task and branches on that, never on the dataset's
name.
"""

from __future__ import annotations

from planner.tasks.gym import gym_task, parse_gym_dataset_name
from planner.tasks.locomotion import (
    DATASET_KINDS,
    LOCOMOTION_TASKS,
    LocomotionTask,
    find_locomotion_task,
    locomotion_dataset_names,
)
from planner.tasks.maze2d import MAZE_TASKS, MazeTask, find_maze_task
from planner.tasks.ogbench import OGBENCH_TASKS, OGBenchMazeTask, find_ogbench_task

Task = MazeTask | LocomotionTask | OGBenchMazeTask


def get_task(dataset: str, env: str | None = None) -> Task | None:
    """The task a run on ``dataset`` is evaluated in: with ``env`` (``data.env``) that
    environment's (a D4RL body's task, with its references, when ``env`` is that body's
    simulator); else the Maze2D task or locomotion body the dataset's name, path or Minari id
    refers to; ``None`` when it refers to none. A ``ValueError`` when ``env`` is not an
    environment planner can run."""
    if env is not None:
        known = (task for task in LOCOMOTION_TASKS.values() if task.gym_id == env)
        return next(known, None) or gym_task(env)
    return find_maze_task(dataset) or find_ogbench_task(dataset) or find_locomotion_task(dataset)


def generated_names() -> tuple[str, ...]:
    """Every dataset name ``planner data generate`` regenerates without ``data.env``."""
    return (*MAZE_TASKS, *locomotion_dataset_names(), *OGBENCH_TASKS)


def generated_family(dataset: str, env: str | None = None) -> str:
    """Which family's generator regenerates ``dataset``: ``maze2d``, ``locomotion`` or
    ``ogbench`` for the names of :func:`generated_names`, ``gym`` for a dataset of ``env``. A
    ``ValueError`` naming what is accepted otherwise."""
    if dataset in MAZE_TASKS:
        return "maze2d"
    if dataset in locomotion_dataset_names():
        return "locomotion"
    if dataset in OGBENCH_TASKS:
        return "ogbench"
    own = ""
    if env is not None:
        try:
            parse_gym_dataset_name(dataset, env)
        except ValueError as error:
            own = f", or with data.env: {error}"
        else:
            return "gym"
    raise ValueError(
        f"data.dataset must be a Maze2D id ({', '.join(MAZE_TASKS)}), a locomotion name "
        f"(<{'|'.join(LOCOMOTION_TASKS)}>-<{'|'.join(DATASET_KINDS)}>-v2) or an OGBench "
        f"pointmaze name (pointmaze-<medium|large|giant|teleport>-<navigate|stitch>-v0) to be "
        f"regenerated"
        f"{own}; got {dataset!r}"
    )
