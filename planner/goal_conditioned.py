"""What OGBench's goal-conditioned baselines here share: the MLP of an observation and a goal,
observation scaling, saving with the parameters, and the training loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class GoalConditionedMLP(nn.Module):
    """``(observations [B, O], goals [B, O]) -> outputs [B, out_dim]``, in ``[-1, 1]`` (tanh)
    when ``squash`` (actions). Layers of ``hidden`` units with layer norm and GELU (OGBench's)."""

    out_dim: int
    hidden: tuple[int, ...]
    squash: bool = True

    @nn.compact
    def __call__(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        h = jnp.concatenate([observations, goals], axis=-1)
        for features in self.hidden:
            h = nn.gelu(nn.LayerNorm()(nn.Dense(features)(h)))
        out = nn.Dense(self.out_dim)(h)
        return jnp.tanh(out) if self.squash else out


def scaled(mean: np.ndarray, std: np.ndarray, *arrays: np.ndarray) -> list[jax.Array]:
    """Each of ``arrays`` [..., O] as ``(a - mean) / std``, float32."""
    return [jnp.asarray((a - mean) / std, jnp.float32) for a in arrays]


def save_with_params(path: Path, params: Any, **arrays: Any) -> None:
    """Write ``params`` (serialized) and ``arrays`` to ``path`` (``.npz``)."""
    blob = np.frombuffer(flax.serialization.to_bytes(params), np.uint8)
    np.savez(path, params=blob, **arrays)


def load_with_params(path: Path, template: Callable[[dict], Any]) -> tuple[Any, dict]:
    """``(params, arrays)`` of a :func:`save_with_params` file; ``template(arrays)`` gives
    parameters of the right structure to restore into."""
    with np.load(path) as file:
        arrays = {key: file[key] for key in file.files if key != "params"}
        blob = file["params"].tobytes()
    return flax.serialization.from_bytes(template(arrays), blob), arrays


def trained_unless_kept(
    run_dir: Path,
    file_name: str,
    steps: int,
    train: Callable[[], tuple[Any, list[float]]],
    **details: Any,
) -> dict:
    """The training record (``training.json``) of ``run_dir``: unless it holds ``file_name``
    trained ``steps`` steps, ``train() -> (model, losses)`` runs and the model is saved there
    (``model.save(path)``), timed, with ``details`` in the record."""
    run_dir = Path(run_dir)
    record_path = run_dir / "training.json"
    if record_path.is_file() and (run_dir / file_name).is_file():
        kept = json.loads(record_path.read_text())
        if kept["steps"] == steps:
            return kept
    began = time.perf_counter()
    model, losses = train()
    minutes = (time.perf_counter() - began) / 60
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / file_name)
    record = {
        "steps": steps,
        **details,
        "wall_minutes": round(minutes, 1),
        "steps_per_second": round(steps / (60 * minutes), 1),
        "loss_per_1000_steps": [round(loss, 4) for loss in losses],
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def fit(
    update: Callable[[Any, jax.Array], tuple[Any, jax.Array]],
    state: Any,
    key: jax.Array,
    steps: int,
    description: str,
    show_progress: bool = True,
) -> tuple[Any, list[float]]:
    """``(state, losses)`` after ``steps`` calls ``state, loss = update(state, key)``, each with
    its own key split from ``key``; ``losses`` the mean of every 1,000 steps (and of the rest)."""
    losses, recent = [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress) as progress:
        bar = progress.add_task(description, total=steps)
        for step in range(steps):
            key, step_key = jax.random.split(key)
            state, loss = update(state, step_key)
            recent.append(loss)
            if (step + 1) % 1000 == 0 or step + 1 == steps:
                losses.append(float(jnp.mean(jnp.stack(recent))))
                recent = []
                progress.update(
                    bar, completed=step + 1, description=f"{description} {losses[-1]:.3f}"
                )
    return state, losses
