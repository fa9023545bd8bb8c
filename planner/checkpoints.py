"""Orbax checkpoints of a training run.

Each checkpoint (``RUN_DIR/checkpoints/<step>/``) holds three items: ``state`` (parameters, EMA,
optimizer state, step, PRNG key data), ``normalizer`` and ``record``, a json with the resolved
config, the model kind, the dataset and the git revision. Orbax writes a checkpoint to a temporary
directory and renames it when complete, so a process killed mid-save leaves no checkpoint that
loads: the previous one stays the latest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from planner.config import Config, config_to_dict
from planner.data.normalize import Normalizer
from planner.errors import PlannerError
from planner.provenance import git_revision

# A checkpoint belongs to one model trained on one dataset: these sections must match to resume.
IDENTITY_SECTIONS = ("data", "model", "diffusion")


class CheckpointError(PlannerError, RuntimeError):
    """A checkpoint that cannot be used here, with what to do about it."""


def checkpoint_manager(run_dir: str | Path, keep: int | None = None) -> ocp.CheckpointManager:
    """The run's Orbax manager; when saving, only the latest ``keep`` checkpoints stay
    (``None``: all)."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints", options=options)


def make_record(config: Config, kind: str, step: int, action_dim: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "step": step,
        "action_dim": action_dim,
        "config": config_to_dict(config),
        "git_revision": git_revision(),
    }


def save_checkpoint(
    manager: ocp.CheckpointManager, state: Any, normalizer: Normalizer, record: dict
) -> None:
    """Write a checkpoint at ``record['step']`` and wait until it is complete on disk."""
    manager.save(
        record["step"],
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            normalizer=ocp.args.StandardSave(normalizer),
            record=ocp.args.JsonSave(record),
        ),
        force=True,
    )
    manager.wait_until_finished()


def read_record(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    where = manager.directory / str(step)
    try:
        return manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))[
            "record"
        ]
    except Exception as error:
        raise CheckpointError(f"{where}: checkpoint record cannot be read ({error})") from None


def check_compatible(record: dict[str, Any], config: Config, kind: str, where: Path) -> None:
    """Refuse a checkpoint of another model kind, task, dataset or architecture."""
    if record.get("kind") != kind:
        raise CheckpointError(
            f"{where}: holds a {record.get('kind')} model, not a {kind} model; use another run "
            f"directory"
        )
    current = config_to_dict(config)
    differences = [
        f"{section}.{key}: checkpoint {value!r}, config {current[section].get(key)!r}"
        for section in IDENTITY_SECTIONS
        for key, value in record["config"].get(section, {}).items()
        if current[section].get(key) != value
    ]
    if differences:
        raise CheckpointError(
            f"{where}: checkpoint was trained with another config or task "
            f"({'; '.join(differences)}); use another run directory or the same settings"
        )


def restore_checkpoint(
    manager: ocp.CheckpointManager,
    step: int,
    abstract_state: Any,
    abstract_normalizer: Normalizer,
) -> tuple[Any, Normalizer]:
    """The state and normalizer saved at ``step``, with the structure of the given templates."""
    where = manager.directory / str(step)
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                normalizer=ocp.args.StandardRestore(abstract_normalizer),
            ),
        )
    except Exception as error:
        raise CheckpointError(
            f"{where}: checkpoint cannot be restored ({type(error).__name__}: {error}); it may "
            f"be corrupted: delete it to resume from an earlier one"
        ) from None
    return restored["state"], restored["normalizer"]
