import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from planner.checkpoints import CheckpointError, checkpoint_manager
from planner.cli import main
from planner.config import load_config
from planner.data.episodes import make_episodes
from planner.data.windows import make_window_dataset
from planner.diffusion.train import (
    init_train_state,
    make_optimizer,
    make_train_chunk,
    make_train_step,
)
from planner.runtime import data_mesh
from planner.training import MetricsLogger, TrainingError, build_setup, train

TINY = [
    "model.dim=8",
    "model.dim_mults=[1, 2]",
    "data.horizon=16",
    "data.generate_steps=3000",
    "diffusion.n_diffusion_steps=10",
    "train.batch_size=8",
    "train.steps=40",
    "train.steps_per_dispatch=1",
    "train.log_every=10",
    "train.checkpoint_every=20",
    "train.ema_start=0",
    "train.value_steps=20",
    "data.segmentation=timeouts",
]


@pytest.fixture
def tiny_config(shared_data_dir):
    def make(*overrides: str):
        return load_config(
            "configs/maze2d-umaze.yaml", [*TINY, f"data.data_dir={shared_data_dir}", *overrides]
        )

    return make


def params_of(run_dir):
    """``(step, state)`` of a run directory's latest checkpoint, restored as saved."""
    manager = checkpoint_manager(run_dir)
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return step, restored["state"]


def assert_same_final_checkpoint(run_a, run_b, step: int) -> None:
    """Both runs' latest checkpoints are at ``step`` and hold bit-identical training states."""
    (step_a, state_a), (step_b, state_b) = params_of(run_a), params_of(run_b)
    assert step_a == step_b == step
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(a, b)


def synthetic_windows(horizon=16, n=4000, seed=0):
    """Smooth random sinusoid trajectories: learnable structure, 2 action + 4 observation dims."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(n)[:, None] * 0.05
    phases = rng.uniform(0, 2 * np.pi, size=6)
    steps = np.sin(time_axis + phases).astype(np.float32)
    arrays = {
        "observations": steps[:, 2:],
        "actions": steps[:, :2],
        "rewards": np.zeros(n, np.float32),
    }
    return make_window_dataset(make_episodes("sines", arrays), horizon)


def test_loss_decreases_on_a_small_synthetic_dataset(tiny_config):
    """Each window is fixed by its (conditioned) first state, so the clean trajectory is
    learnable at every noise level: 400 steps must cut the loss by at least 2.5x."""
    config = tiny_config(
        "train.steps_per_dispatch=1", "train.learning_rate=3e-3", "train.batch_size=32"
    )
    windows = synthetic_windows()
    setup = build_setup(config, "diffusion", windows)
    optimizer = make_optimizer(config.train, 400)
    state = init_train_state(setup.initial_params, optimizer, seed=0)
    step = make_train_chunk(
        make_train_step(setup.loss_fn, optimizer, config.train), config.train, data_mesh()
    )
    losses = []
    for _ in range(400):
        state, metrics = step(state, windows)
        losses.append(float(metrics["loss"][0]))
    first, last = np.mean(losses[:50]), np.mean(losses[-50:])
    assert last < first / 2.5, (first, last)


@pytest.mark.parametrize("steps_per_dispatch", [1, 10])
def test_train_chunk_never_retraces(tiny_config, steps_per_dispatch):
    config = tiny_config(
        f"train.steps_per_dispatch={steps_per_dispatch}",
        "train.log_every=10",
        "train.checkpoint_every=20",
    )
    windows = synthetic_windows()
    setup = build_setup(config, "diffusion", windows)
    traces = []

    def counting_loss(params, batch, key):
        traces.append(1)
        return setup.loss_fn(params, batch, key)

    optimizer = make_optimizer(config.train, 40)
    state = init_train_state(setup.initial_params, optimizer, seed=0)
    chunk = make_train_chunk(
        make_train_step(counting_loss, optimizer, config.train), config.train, data_mesh()
    )
    state, _ = chunk(state, windows)
    after_first_call = len(traces)
    for _ in range(3):
        state, metrics = chunk(state, windows)
    assert len(traces) == after_first_call  # later calls reuse the compiled chunk
    if steps_per_dispatch == 1:
        assert after_first_call == 1
    assert int(state.step) == 4 * steps_per_dispatch
    assert metrics["loss"].shape == (steps_per_dispatch,)


def test_overfit_batch_reuses_one_batch(tiny_config):
    config = tiny_config("train.steps_per_dispatch=10", "train.checkpoint_every=20")
    windows = synthetic_windows()
    setup = build_setup(config, "diffusion", windows)

    def batch_fingerprint(params, batch, key):
        loss, _ = setup.loss_fn(params, batch, key)
        return loss, {"loss": loss, "fingerprint": batch.trajectories.sum()}

    optimizer = make_optimizer(config.train, 40)
    fingerprints = {}
    for overfit in (False, True):
        step = make_train_step(batch_fingerprint, optimizer, config.train)
        chunk = make_train_chunk(step, config.train, data_mesh(), overfit_batch=overfit)
        state = init_train_state(setup.initial_params, optimizer, seed=0)
        fingerprints[overfit] = np.asarray(chunk(state, windows)[1]["fingerprint"])
    assert len(np.unique(fingerprints[True])) == 1
    assert len(np.unique(fingerprints[False])) == 10
    assert fingerprints[True][0] == fingerprints[False][0]  # the batch of step 0


def test_run_directory_has_everything_and_resume_equals_uninterrupted(tiny_config, tmp_path):
    config = tiny_config()
    straight = train(config, tmp_path / "straight", show_progress=False)
    assert straight["final_step"] == 40
    for name in ("config.yaml", "metrics.jsonl", "training_curve.png"):
        assert (tmp_path / "straight" / name).is_file()
    rows = [
        json.loads(line)
        for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows] == [10, 20, 30, 40]
    assert all(np.isfinite(row["loss"]) and row["steps_per_second"] > 0 for row in rows)

    # the same run stopped at step 20, then resumed to 40
    train(tiny_config("train.steps=20"), tmp_path / "resumed", show_progress=False)
    resumed = train(config, tmp_path / "resumed", show_progress=False)
    assert resumed["start_step"] == 20 and resumed["final_step"] == 40
    assert_same_final_checkpoint(tmp_path / "straight", tmp_path / "resumed", 40)


def test_checkpoint_of_another_config_or_kind_is_refused(tiny_config, tmp_path):
    train(tiny_config("train.steps=20"), tmp_path / "run", show_progress=False)
    with pytest.raises(
        CheckpointError, match=r"another config or task \(model\.dim: checkpoint 8, config 16"
    ):
        train(tiny_config("model.dim=16"), tmp_path / "run", show_progress=False)
    with pytest.raises(CheckpointError, match=r"data\.dataset: checkpoint 'maze2d-umaze-v1'"):
        train(
            tiny_config("data.dataset=maze2d-medium-v1", "data.generate_steps=2000"),
            tmp_path / "run",
            show_progress=False,
        )
    with pytest.raises(CheckpointError, match="holds a diffusion model, not a value model"):
        train(tiny_config(), tmp_path / "run", kind="value", show_progress=False)


def test_corrupted_checkpoint_is_refused(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("train.steps=20"), run, show_progress=False)
    for path in (run / "checkpoints" / "20" / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"checkpoints/20: checkpoint cannot be restored"):
        train(tiny_config(), run, show_progress=False)


def test_an_interrupted_save_is_ignored(tiny_config, tmp_path):
    """Orbax writes into a temporary directory and renames it when complete; what a kill
    mid-save leaves behind is never taken for a checkpoint."""
    run = tmp_path / "run"
    train(tiny_config("train.steps=20"), run, show_progress=False)
    partial = run / "checkpoints" / "40.orbax-checkpoint-tmp-1700000000000000"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "garbage").write_bytes(b"\0" * 64)
    resumed = train(tiny_config(), run, show_progress=False)
    assert resumed["start_step"] == 20 and resumed["final_step"] == 40


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("train.steps=20"), run, show_progress=False)
    # a learning rate this large sends the parameters to inf within a few Adam steps
    with pytest.raises(
        TrainingError, match=r"loss became (nan|inf) .* Last good checkpoint: step 20"
    ):
        train(tiny_config("train.learning_rate=1e38", "train.steps=200"), run, show_progress=False)
    assert params_of(run)[0] == 20


def test_value_model_trains_from_the_cli(shared_data_dir, tmp_path, capsys):
    args = [
        "train-value",
        "--config",
        "configs/maze2d-umaze.yaml",
        "--run-dir",
        str(tmp_path / "value"),
    ]
    overrides = [*TINY, f"data.data_dir={shared_data_dir}"]
    assert main([*args, *[f"--set={o}" for o in overrides]]) == 0
    assert "trained value model to step 20" in capsys.readouterr().out
    assert (tmp_path / "value" / "checkpoints" / "20").is_dir()
    assert main([*args, *[f"--set={o}" for o in overrides]]) == 0  # rerun: already complete
    assert "already trained to step 20; nothing to do" in capsys.readouterr().out


def test_train_with_value_bc_and_invdyn_trains_all_four_next_to_each_other(
    shared_data_dir, tmp_path, capsys
):
    """`planner train --with value bc invdyn` is the four trainers in one command, with the
    value, BC and inverse-dynamics runs where `planner eval`, a ``{run}-value`` objective and
    ``plan.inverse_dynamics: '{run}-invdyn'`` look for them."""
    overrides = [*TINY, f"data.data_dir={shared_data_dir}", "train.bc_steps=20"]
    overrides.append("train.invdyn_steps=30")
    run = tmp_path / "run"
    args = ["train", "--config", "configs/maze2d-umaze.yaml", "--run-dir", str(run)]
    also = ["--with", "value", "bc", "invdyn"]
    assert main([*args, *also, *[f"--set={o}" for o in overrides]]) == 0
    out = capsys.readouterr().out
    assert "trained diffusion model to step 40" in out
    assert "trained value model to step 20" in out and "trained bc model to step 20" in out
    assert "trained invdyn model to step 30" in out
    steps = {"": 40, "-value": 20, "-bc": 20, "-invdyn": 30}
    for suffix, step in steps.items():
        assert (tmp_path / f"run{suffix}" / "checkpoints" / str(step)).is_dir()


def test_killed_training_resumes_to_the_same_parameters(
    shared_data_dir, compilation_cache, tmp_path
):
    """`planner train` killed after its first checkpoint, then rerun, ends where an uninterrupted
    run ends."""
    overrides = [
        *TINY,
        f"data.data_dir={shared_data_dir}",
        "train.steps=100",
        "train.checkpoint_every=20",
    ]
    command = [
        sys.executable,
        "-m",
        "planner.cli",
        "train",
        "--config",
        "configs/maze2d-umaze.yaml",
    ]
    command += [f"--set={o}" for o in overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_COMPILATION_CACHE_DIR": compilation_cache}
    process = subprocess.Popen(
        [*command, "--run-dir", str(tmp_path / "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = tmp_path / "killed" / "checkpoints" / "20"
    deadline = time.monotonic() + 120
    while not first.is_dir() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = params_of(tmp_path / "killed")[0]
    assert killed_at < 100  # it really was interrupted
    subprocess.run(
        [*command, "--run-dir", str(tmp_path / "killed")], env=env, check=True, capture_output=True
    )
    subprocess.run(
        [*command, "--run-dir", str(tmp_path / "straight")],
        env=env,
        check=True,
        capture_output=True,
    )
    assert_same_final_checkpoint(tmp_path / "straight", tmp_path / "killed", 100)


def test_wandb_logs_offline_into_the_run_directory(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(tiny_config("train.steps=20", "logging.wandb=true"), run, show_progress=False)
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert any(offline_runs[0].rglob("*.wandb"))


def test_metric_rows_average_every_step_since_the_previous_row(tiny_config, tmp_path):
    logger = MetricsLogger(tmp_path, tiny_config(), "diffusion")
    logger.log(3, [{"loss": np.array([1.0, 2.0])}, {"loss": np.array([6.0])}], 5.0)
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["step"] == 3 and row["loss"] == 3.0 and row["steps_per_second"] == 5.0
