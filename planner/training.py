"""The training driver behind ``planner train``, ``train-value``, ``train-bc`` and ``train-invdyn``.

A run directory holds everything needed to plan later::

    RUN_DIR/config.yaml            the resolved config
    RUN_DIR/checkpoints/<step>/    Orbax: state (params, EMA, optimizer, step, key),
                                   normalizer, record
    RUN_DIR/metrics.jsonl          one json row per log interval (means over its steps)
    RUN_DIR/training_curve.png     loss against steps, written at the end

Training resumes from the latest checkpoint of the run directory.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from planner.checkpoints import (
    check_compatible,
    checkpoint_manager,
    make_record,
    read_record,
    restore_checkpoint,
    save_checkpoint,
)
from planner.config import Config, config_to_dict, save_config
from planner.data.attributes import attributes_from_specs
from planner.data.episodes import Episodes
from planner.data.normalize import Normalizer
from planner.data.sources import load_episodes
from planner.data.windows import WindowDataset, make_window_dataset
from planner.diffusion.losses import (
    make_bc_loss,
    make_diffusion_loss,
    make_inverse_dynamics_loss,
    make_value_loss,
)
from planner.diffusion.schedule import cosine_schedule
from planner.diffusion.train import (
    TrainState,
    init_train_state,
    make_optimizer,
    make_train_chunk,
    make_train_step,
)
from planner.energies.terms import declared_layout
from planner.errors import PlannerError
from planner.models.bc import BehaviourCloning, InverseDynamics
from planner.models.denoiser import make_predict_fn, make_unet
from planner.models.unet import init_params
from planner.models.value import ValueNet
from planner.runtime import data_mesh
from planner.viz.training import plot_training_curve

ModelKind = Literal["diffusion", "value", "bc", "invdyn"]


class TrainingError(PlannerError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what was kept."""


def training_steps(config: Config, kind: ModelKind) -> int:
    """The gradient steps a ``kind`` run of ``config`` trains to."""
    train = config.train
    steps = {"diffusion": train.steps, "value": train.value_steps, "bc": train.bc_steps}
    return {**steps, "invdyn": train.invdyn_steps}[kind]


@dataclass(frozen=True)
class TrainingSetup:
    """What a run trains: the loss, the initial parameters and the number of steps."""

    loss_fn: Any
    initial_params: Any
    total_steps: int


def build_setup(config: Config, kind: ModelKind, windows: WindowDataset) -> TrainingSetup:
    """The network, loss and initial parameters for ``kind`` on ``windows``."""
    loss_fn, params = _loss_and_params(config, kind, windows)
    return TrainingSetup(loss_fn, params, training_steps(config, kind))


def _loss_and_params(config: Config, kind: ModelKind, windows: WindowDataset) -> tuple[Any, Any]:
    horizon = windows.horizon
    transition_dim = int(windows.transitions.shape[1])
    schedule = cosine_schedule(config.diffusion.n_diffusion_steps)
    init_key = jax.random.key(config.train.seed)
    x = jnp.zeros((1, horizon, transition_dim))
    t = jnp.zeros((1,), jnp.int32)
    observations = jnp.zeros((1, transition_dim - windows.action_dim))
    if kind == "diffusion":
        unet = make_unet(config, transition_dim)
        loss_fn = make_diffusion_loss(
            config,
            make_predict_fn(unet, config),
            schedule,
            horizon,
            transition_dim,
            windows.action_dim,
        )
        return loss_fn, init_params(unet, init_key, x, t)
    if kind == "bc":
        policy = BehaviourCloning(windows.action_dim)
        loss_fn = make_bc_loss(policy.apply, windows.action_dim)
        return loss_fn, init_params(policy, init_key, observations)
    if kind == "invdyn":
        inverse = InverseDynamics(windows.action_dim)
        loss_fn = make_inverse_dynamics_loss(inverse.apply, windows.action_dim)
        return loss_fn, init_params(inverse, init_key, observations, observations)
    model = config.model
    value_net = ValueNet(model.dim, model.dim_mults, model.kernel_size, model.attention)
    loss_fn = make_value_loss(config, value_net.apply, schedule, windows.action_dim)
    return loss_fn, init_params(value_net, init_key, x, t)


def make_trainer(
    config: Config, kind: ModelKind, windows: WindowDataset, overfit_batch: bool = False
) -> tuple[TrainState, Callable, int]:
    """``(initial state, chunk, total steps)`` for training ``kind`` on ``windows``;
    ``chunk(state, windows) -> (state, metrics)`` runs ``train.steps_per_dispatch`` steps."""
    setup = build_setup(config, kind, windows)
    optimizer = make_optimizer(config.train, setup.total_steps)
    state = init_train_state(setup.initial_params, optimizer, config.train.seed)
    step = make_train_step(setup.loss_fn, optimizer, config.train)
    chunk = make_train_chunk(step, config.train, data_mesh(), overfit_batch)
    return state, chunk, setup.total_steps


def load_windows(
    config: Config, episodes: Episodes | None = None, normalizer: Normalizer | None = None
) -> WindowDataset:
    """Training windows of ``config``'s dataset, normalized by ``normalizer`` if given (as
    restored from a checkpoint), else by one fitted to the data."""
    data = config.data
    return make_window_dataset(
        episodes or load_episodes(data),
        data.horizon,
        padding=data.padding,
        jump=data.jump,
        rest_dims=data.rest_dims,
        normalizer_kind=data.normalizer,
        normalizer=normalizer,
        discount=data.discount,
        termination_penalty=data.termination_penalty,
        attributes=attributes_from_specs(data.attributes),
        unconditional_probability=config.diffusion.unconditional_probability,
    )


def train(
    config: Config,
    run_dir: str | Path,
    kind: ModelKind = "diffusion",
    overfit_batch: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the ``kind`` model of ``config`` in ``run_dir``; returns a summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manager = checkpoint_manager(run_dir, config.train.keep_checkpoints)
    latest = manager.latest_step()
    if latest is not None:
        check_compatible(
            read_record(manager, latest), config, kind, manager.directory / str(latest)
        )
    save_config(config, run_dir / "config.yaml")

    episodes = load_episodes(config.data)
    check_declared_dims(config, episodes)
    windows = load_windows(config, episodes)
    state, chunk, total_steps = make_trainer(config, kind, windows, overfit_batch)
    if latest is not None:
        state, normalizer = restore_checkpoint(manager, latest, state, windows.normalizer)
        windows = load_windows(config, episodes, normalizer)  # the statistics the model saw
    logger = MetricsLogger(run_dir, config, kind)
    start_step = int(state.step)
    summary = {"run_dir": str(run_dir), "kind": kind, "start_step": start_step}
    try:
        state = _loop(
            state, chunk, windows, total_steps, manager, config, kind, logger, show_progress
        )
    finally:
        logger.close()
    plot_training_curve(logger.path, run_dir / "training_curve.png")
    return {**summary, **logger.last, "final_step": int(state.step)}


def check_declared_dims(config: Config, episodes: Episodes) -> None:
    """Refuse ``data.position_dims`` / ``velocity_dims`` outside the data's observations
    before training (planning would refuse them later)."""
    data = config.data
    declared_layout(
        episodes.actions.shape[1],
        episodes.observations.shape[1],
        data.position_dims,
        data.velocity_dims,
        episodes.name,
    )


def _loop(
    state, chunk, windows, total_steps, manager, config, kind, logger, show_progress
) -> TrainState:
    train_config = config.train
    step = int(state.step)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.1f} steps/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress:
        bar = progress.add_task(
            f"train {kind}", total=total_steps, completed=step, loss=math.nan, rate=0.0
        )
        compile_began = time.perf_counter()
        timer_step, timer_start = step, None
        since_last_row: list[dict] = []  # per-chunk metrics since the previous metrics row
        while step < total_steps:
            new_state, metrics = chunk(state, windows)
            losses = np.asarray(metrics["loss"])
            if not np.all(np.isfinite(losses)):
                kept = manager.latest_step()
                raise TrainingError(
                    f"loss became {losses[~np.isfinite(losses)][0]} between steps {step} and "
                    f"{step + train_config.steps_per_dispatch}; stopped. Last good checkpoint: "
                    f"{'none' if kept is None else f'step {kept}'} in {manager.directory}. Try a "
                    f"lower train.learning_rate or set train.grad_clip."
                )
            state, step = new_state, int(new_state.step)
            if timer_start is None:  # the first chunk includes compilation
                logger.compile_seconds = time.perf_counter() - compile_began
                timer_step, timer_start = step, time.perf_counter()
            elapsed = time.perf_counter() - timer_start
            rate = (step - timer_step) / elapsed if elapsed > 0 else math.nan
            progress.update(bar, completed=step, loss=float(losses.mean()), rate=rate)
            since_last_row.append(metrics)
            if step % train_config.log_every == 0 or step == total_steps:
                logger.log(step, since_last_row, rate)
                since_last_row = []
            if step % train_config.checkpoint_every == 0 or step == total_steps:
                record = make_record(config, kind, step, windows.action_dim)
                save_checkpoint(manager, state, windows.normalizer, record)
    return state


class MetricsLogger:
    """Appends metric rows to ``metrics.jsonl`` and, when enabled, to W&B (offline by default)."""

    def __init__(self, run_dir: Path, config: Config, kind: str):
        self.path = run_dir / "metrics.jsonl"
        self.began = time.perf_counter()
        self.compile_seconds = math.nan
        self.last: dict[str, Any] = {}
        self.wandb_run = None
        if config.logging.wandb:
            import wandb

            self.wandb_run = wandb.init(
                project=config.logging.wandb_project,
                mode=config.logging.wandb_mode,
                dir=str(run_dir),
                name=f"{run_dir.name}-{kind}",
                config=config_to_dict(config),
            )

    def log(self, step: int, chunks: list[dict[str, jax.Array]], steps_per_second: float) -> None:
        """One row: each metric averaged over every step of ``chunks`` (the steps since the
        previous row), with the throughput and wall time so far."""
        row = {
            "step": step,
            **{k: float(np.mean(np.concatenate([c[k] for c in chunks]))) for k in chunks[0]},
        }
        row["steps_per_second"] = round(steps_per_second, 3)
        row["compile_seconds"] = round(self.compile_seconds, 3)
        row["wall_seconds"] = round(time.perf_counter() - self.began, 3)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=step)
        self.last = row

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
