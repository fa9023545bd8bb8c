"""Shared fixtures: a small regenerated U-Maze stream, and isolated data directories."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from planner.config import load_config
from planner.data.maze2d import generate_maze2d
from planner.tasks.maze2d import get_maze_task

SMALL_STEPS = 20_000


@pytest.fixture(autouse=True)
def isolated_directories(tmp_path, monkeypatch):
    """Keep every test away from the user's caches."""
    monkeypatch.setenv("PLANNER_DATA_DIR", str(tmp_path / "planner-data"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """One persistent XLA cache for the session (and the subprocesses it starts): the tiny
    models of many tests compile once."""
    directory = str(tmp_path_factory.mktemp("jax-cache"))
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return directory


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """Regenerated datasets shared by every test that trains on the same small file."""
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="session")
def umaze():
    return get_maze_task("maze2d-umaze-v1")


@pytest.fixture(scope="session")
def umaze_arrays(umaze) -> dict[str, np.ndarray]:
    """A 20k-step regenerated U-Maze stream in the D4RL layout (seed 0)."""
    arrays = generate_maze2d(umaze, SMALL_STEPS, seed=0)
    for value in arrays.values():
        value.setflags(write=False)
    return arrays


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, shared_data_dir):
    """A tiny U-Maze diffusion run (``root/diffusion``) and value run (``root/value``)."""
    from test_training import TINY

    from planner.training import train

    root = tmp_path_factory.mktemp("runs")
    config = load_config("configs/maze2d-umaze.yaml", [*TINY, f"data.data_dir={shared_data_dir}"])
    train(config, root / "diffusion", "diffusion", show_progress=False)
    train(config, root / "value", "value", show_progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_jumpy_run(tmp_path_factory, shared_data_dir):
    """A tiny hierarchical (jumpy) U-Maze run: 16 subgoal rows 4 steps apart."""
    from test_training import TINY

    from planner.training import train

    run_dir = tmp_path_factory.mktemp("jumpy") / "diffusion"
    config = load_config(
        "configs/maze2d-umaze-jumpy.yaml",
        [*TINY, "data.jump=4", "train.batch_size=8", f"data.data_dir={shared_data_dir}"],
    )
    train(config, run_dir, "diffusion", show_progress=False)
    return run_dir
