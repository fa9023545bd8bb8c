"""The one place that turns a data config into :class:`Episodes`: pick the source, regenerate a
missing Maze2D, locomotion or OGBench file (or one of ``data.env``'s), check the dimensions
against ``data.env``, apply the configured segmentation."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import h5py
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from planner.config import ConfigError, DataConfig
from planner.data.d4rl import find_d4rl_file, load_d4rl, write_hdf5
from planner.data.episodes import (
    DatasetError,
    Episodes,
    boundaries_leaving_goal,
    expected_dimensions,
    resegment,
)
from planner.data.locomotion import LOCOMOTION_STEPS, generate_gym_dataset, generate_locomotion
from planner.data.maze2d import generate_maze2d, reference_scores
from planner.data.minari import load_minari
from planner.data.ogbench import load_pointmaze, write_pointmaze
from planner.paths import data_dir
from planner.provenance import git_revision
from planner.tasks import generated_family, generated_names
from planner.tasks.base import file_stem
from planner.tasks.gym import gym_task, parse_gym_dataset_name
from planner.tasks.locomotion import LocomotionTask
from planner.tasks.maze2d import GOAL_RADIUS, MAZE_TASKS, MazeTask, find_maze_task, get_maze_task
from planner.tasks.ogbench import OGBENCH_TASKS, OGBenchMazeTask

OGBENCH_DATA_DIR = Path("~/.ogbench/data")  # where OGBench's own loader keeps its files


def generated_path(
    task: MazeTask | str, steps: int, seed: int, directory: str | Path | None
) -> Path:
    """File of a regenerated dataset: ``<name>.hdf5`` for the default size and seed 0, else
    ``<name>-<steps>steps-seed<seed>.hdf5``, in :func:`planner.paths.data_dir`. ``task`` is a
    Maze2D task or a locomotion dataset name such as ``hopper-medium-v2`` or
    ``InvertedPendulum-v5-medium-return500`` (``/`` and ``:`` of an id become ``_``)."""
    if isinstance(task, MazeTask):
        name, default_steps = task.name, task.dataset_steps
    else:
        name, default_steps = file_stem(task), LOCOMOTION_STEPS
    default = steps == default_steps and seed == 0
    stem = name if default else f"{name}-{steps}steps-seed{seed}"
    return data_dir(directory) / f"{stem}.hdf5"


def reference_path(dataset_path: Path) -> Path:
    """The reference-score json stored next to a regenerated dataset."""
    return dataset_path.with_suffix(".reference.json")


def generate_dataset(
    task: MazeTask,
    steps: int,
    seed: int,
    out: Path,
    reference_episodes: int = 100,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Regenerate ``task``'s data into ``out`` (D4RL-layout hdf5, gzip) and its reference scores
    into ``out.reference.json``. Returns a record of what was made and how fast."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(f"generating {task.name}", total=steps)
        began = time.perf_counter()
        arrays = generate_maze2d(task, steps, seed, lambda n: progress.advance(bar, n))
        generate_seconds = time.perf_counter() - began
    record = {
        "dataset": task.name,
        "steps": steps,
        "seed": seed,
        "segments": int(arrays["timeouts"].sum()),
        "generate_seconds": round(generate_seconds, 2),
        "steps_per_second": round(steps / generate_seconds),
        "git_revision": git_revision(),
        "machine": platform.platform(),
    }
    write_hdf5(out, arrays, attrs=record)
    if reference_episodes:
        references = reference_scores(task, episodes=reference_episodes, seed=0)
        reference_path(out).write_text(json.dumps(references, indent=2))
        record["reference"] = references
    return record


def load_generated(config: DataConfig, generate_if_missing: bool = True) -> Episodes:
    """The regenerated Maze2D or locomotion dataset of ``config`` (or, with ``config.env``, one
    of that environment's), generating it first if the file is missing."""
    family = generated_family(config.dataset, config.env)
    if family == "locomotion":
        return _load_generated_locomotion(config, generate_if_missing)
    if family == "ogbench":
        return _load_generated_ogbench(config, generate_if_missing)
    if family == "gym":
        return _load_generated_gym(config, generate_if_missing)
    task = get_maze_task(config.dataset)
    steps = config.generate_steps or task.dataset_steps
    path = generated_path(task, steps, config.generate_seed, config.data_dir)
    if not path.is_file():
        if not generate_if_missing:
            raise FileNotFoundError(
                f"{path}: not generated yet (planner data generate {task.name})"
            )
        print(
            f"{path} is missing: generating {steps} steps of {task.name} "
            f"(seed {config.generate_seed})"
        )
        generate_dataset(task, steps, config.generate_seed, path)
    return load_d4rl(path, expected_dims=expected_dimensions(task.name))


def _load_generated_locomotion(config: DataConfig, generate_if_missing: bool) -> Episodes:
    name = config.dataset
    steps = config.generate_steps or LOCOMOTION_STEPS
    path = generated_path(name, steps, config.generate_seed, config.data_dir)
    if not path.is_file():
        if not generate_if_missing:
            raise FileNotFoundError(f"{path}: not generated yet (planner data generate {name})")
        print(f"{path} is missing: generating {name} (seed {config.generate_seed})")
        generate_locomotion(name, path, steps, config.generate_seed)
    return load_d4rl(path, expected_dims=expected_dimensions(name))


def ogbench_path(task: OGBenchMazeTask, episodes: int, seed: int, directory: str | Path | None):
    """File of a regenerated OGBench dataset: ``<name>.npz`` for the task's own episode count
    and seed 0, else ``<name>-<episodes>episodes-seed<seed>.npz``, in the data directory."""
    default = episodes == task.data_episodes and seed == 0
    stem = task.name if default else f"{task.name}-{episodes}episodes-seed{seed}"
    return data_dir(directory) / f"{stem}.npz"


def ogbench_episodes(task: OGBenchMazeTask, steps: int | None) -> int:
    """Episodes of ``task``'s recipe that hold at least ``steps`` steps (None: the task's)."""
    return task.data_episodes if steps is None else -(-steps // task.data_episode_steps)


def generate_ogbench(
    task: OGBenchMazeTask, episodes: int, seed: int, out: Path, show_progress: bool = True
) -> dict[str, Any]:
    """Regenerate ``task``'s dataset into ``out`` (and its ``-val`` file) by OGBench's recipe;
    the record of what was made (also written to ``out`` with suffix ``.json``)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    total = (episodes + max(episodes // 10, 1)) * task.data_episode_steps
    with Progress(*columns, TimeRemainingColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(f"generating {task.name}", total=total)
        began = time.perf_counter()
        steps = write_pointmaze(task, out, seed, episodes, lambda n: progress.advance(bar, n))
        seconds = time.perf_counter() - began
    record = {
        "dataset": task.name,
        "episodes": episodes,
        "episode_steps": task.data_episode_steps,
        "steps": steps["train"],
        "validation_steps": steps["validation"],
        "seed": seed,
        "generate_seconds": round(seconds, 2),
        "git_revision": git_revision(),
        "machine": platform.platform(),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return record


def _load_generated_ogbench(config: DataConfig, generate_if_missing: bool) -> Episodes:
    task = OGBENCH_TASKS[config.dataset]
    episodes = ogbench_episodes(task, config.generate_steps)
    path = ogbench_path(task, episodes, config.generate_seed, config.data_dir)
    if not path.is_file():
        if not generate_if_missing:
            raise FileNotFoundError(
                f"{path}: not generated yet (planner data generate {task.name})"
            )
        print(f"{path} is missing: generating {task.name} (seed {config.generate_seed})")
        generate_ogbench(task, episodes, config.generate_seed, path)
    return load_pointmaze(path)


def ogbench_file(dataset: str) -> Path:
    """OGBench's own file of ``dataset``: a path to an ``.npz``, or a name in OGBench's data
    directory (``~/.ogbench/data/<name>.npz``). A :class:`DatasetError` when it is missing."""
    path = Path(dataset).expanduser()
    if path.suffix != ".npz":
        path = OGBENCH_DATA_DIR.expanduser() / f"{dataset}.npz"
    if not path.is_file():
        raise DatasetError(
            f"{path}: no OGBench file there; give data.dataset as the path of OGBench's .npz, or "
            f"use data.source: generated to regenerate it by OGBench's recipe"
        )
    return path


def _load_generated_gym(config: DataConfig, generate_if_missing: bool) -> Episodes:
    env_id, name = config.env, config.dataset
    kind, stop_return = parse_gym_dataset_name(name, env_id)
    steps = config.generate_steps or LOCOMOTION_STEPS
    path = generated_path(name, steps, config.generate_seed, config.data_dir)
    task = gym_task(env_id)
    if not path.is_file():
        command = f"planner data generate {env_id} --kind {kind}" + (
            f" --stop-return {stop_return:g}" if stop_return is not None else ""
        )
        if not generate_if_missing:
            raise FileNotFoundError(f"{path}: not generated yet ({command} --steps {steps})")
        print(f"{path} is missing: generating {name} (seed {config.generate_seed})")
        generate_gym_dataset(env_id, kind, path, stop_return, steps, config.generate_seed)
    return load_d4rl(path, expected_dims=(task.observation_dim, task.action_dim))


def load_episodes(config: DataConfig) -> Episodes:
    """Episodes for a run, from the configured source, cut by the configured segmentation.
    With ``config.env`` set, a :class:`ConfigError` unless the dataset's observation and action
    dimensions are that environment's."""
    task = _env_task(config)
    match config.source:
        case "generated":
            episodes = load_generated(config)
        case "d4rl" if task is not None:
            path = find_d4rl_file(config.dataset)
            _check_env_dimensions(task, _hdf5_dimensions(path), config)
            episodes = load_d4rl(path, expected_dims=(task.observation_dim, task.action_dim))
        case "d4rl":
            episodes = load_d4rl(config.dataset)
        case "minari":
            episodes = load_minari(config.dataset, download=config.download)
        case "ogbench":
            episodes = load_pointmaze(ogbench_file(config.dataset))
    if task is not None:
        dims = (episodes.observations.shape[1], episodes.actions.shape[1])
        _check_env_dimensions(task, dims, config)
    if config.segmentation == "eval_goal":
        episodes = segment_by_eval_goal(episodes, config.dataset)
    return episodes


def _env_task(config: DataConfig) -> LocomotionTask | None:
    """``config.env``'s task (dimensions read from the environment), or None when unset."""
    if config.env is None:
        return None
    try:
        return gym_task(config.env)
    except ValueError as error:
        raise ConfigError(f"data.env: {error}") from None


def _hdf5_dimensions(path: Path) -> tuple[int | None, int | None]:
    """``(observation_dim, action_dim)`` from an hdf5 file's headers (None where absent)."""
    with h5py.File(path, "r") as file:
        return tuple(
            file[key].shape[1] if key in file and len(file[key].shape) == 2 else None
            for key in ("observations", "actions")
        )


def _check_env_dimensions(
    task: LocomotionTask, dims: tuple[int | None, int | None], config: DataConfig
) -> None:
    expected = (task.observation_dim, task.action_dim)
    if None not in dims and tuple(dims) != expected:
        raise ConfigError(
            f"data.dataset {config.dataset} has {dims[0]} observation and {dims[1]} action "
            f"dimensions, but data.env {config.env} has {expected[0]} and {expected[1]}; the "
            f"dataset must be recorded in that environment"
        )


def segment_by_eval_goal(episodes: Episodes, dataset_name: str) -> Episodes:
    """Diffuser's Maze2D re-segmentation: episodes end when the agent leaves the evaluation goal."""
    task = find_maze_task(dataset_name)
    if task is None:
        raise ValueError(f"{dataset_name}: eval_goal segmentation needs a Maze2D dataset")
    positions = episodes.observations[:, :2]
    return resegment(episodes, boundaries_leaving_goal(positions, task.eval_goal, GOAL_RADIUS))


def resolve_dataset(
    name: str, source: str = "auto", directory: str | Path | None = None
) -> tuple[Episodes, Path]:
    """Episodes for a user-given name and where they came from (for output files next to them).

    ``source`` is ``generated``, ``d4rl``, ``minari`` or ``auto``, which tries in turn a
    regenerated Maze2D or locomotion file of that name, a path or D4RL-cache name, then a local
    Minari id.
    """
    if source in ("auto", "generated") and name in generated_names():
        task = MAZE_TASKS.get(name, name)
        steps = task.dataset_steps if isinstance(task, MazeTask) else LOCOMOTION_STEPS
        path = generated_path(task, steps, 0, directory)
        if path.is_file():
            return load_d4rl(path, expected_dims=expected_dimensions(name)), path
        if source == "generated" or not _is_d4rl(name):
            raise DatasetError(
                f"{name}: not generated yet in {path.parent} and no D4RL file of that name; "
                f"run: planner data generate {name}"
            )
    if source == "minari" or (source == "auto" and not _is_d4rl(name)):
        return load_minari(name), Path(name.replace("/", "_"))
    path = find_d4rl_file(name)
    return load_d4rl(path), path


def _is_d4rl(name: str) -> bool:
    """Whether ``name`` is an hdf5 path or a name found in the D4RL cache."""
    if Path(name).suffix in (".hdf5", ".h5"):
        return True
    try:
        find_d4rl_file(name)
    except DatasetError:
        return False
    return True
