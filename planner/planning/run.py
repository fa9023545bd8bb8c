"""Load a trained run for planning: its config, EMA parameters, normalizer and layout."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from planner.checkpoints import CheckpointError, checkpoint_manager, read_record
from planner.config import Config, config_from_dict
from planner.data.episodes import expected_dimensions
from planner.data.normalize import Normalizer
from planner.diffusion.denoisers import Denoiser, in_precision, network_denoiser
from planner.diffusion.schedule import Schedule, cosine_schedule
from planner.energies.terms import Layout, declared_layout
from planner.models.bc import BehaviourCloning, InverseDynamics
from planner.models.denoiser import make_energy_fn, make_predict_fn, make_unet
from planner.models.value import ValueNet


@dataclass(frozen=True)
class TrainedRun:
    """A checkpoint ready to plan with. ``params`` are the EMA parameters (what Diffuser
    samples with); ``kind`` is ``diffusion``, ``value``, ``bc`` or ``invdyn``."""

    run_dir: Path
    config: Config
    kind: str
    step: int
    params: Any
    normalizer: Normalizer
    layout: Layout

    @functools.cached_property
    def schedule(self) -> Schedule:
        return cosine_schedule(self.config.diffusion.n_diffusion_steps)

    @property
    def transition_dim(self) -> int:
        return self.layout.action_dim + self.layout.observation_dim

    @functools.cached_property
    def denoiser(self) -> Denoiser:
        """The diffusion model as a :class:`Denoiser` (diffusion runs only). Built once per
        run: samplers compile once per denoiser, so every plan with it reuses one program."""
        return self._network_denoiser(jnp.float32)

    @functools.cached_property
    def bfloat16_denoiser(self) -> Denoiser:
        """:attr:`denoiser` with the network evaluated in bfloat16 (``plan.precision``)."""
        return self._network_denoiser(jnp.bfloat16)

    def denoiser_in(self, precision: str) -> Denoiser:
        """:attr:`denoiser` (``float32``) or :attr:`bfloat16_denoiser` (``bfloat16``)."""
        return self.bfloat16_denoiser if precision == "bfloat16" else self.denoiser

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The attributes an attribute-conditioned model was trained with (else empty)."""
        return tuple(spec["name"] for spec in self.config.data.attributes)

    @functools.cached_property
    def _attribute_denoisers(self) -> dict[tuple[str | None, str], Denoiser]:
        return {}

    def attribute_denoiser(self, name: str | None, precision: str = "float32") -> Denoiser:
        """The model conditioned on attribute ``name`` (None: unconditioned), built once per
        name so samplers compile once per composition."""
        if name is not None and name not in self.attribute_names:
            known = ", ".join(self.attribute_names) or "none: the model is unconditioned"
            raise ValueError(f"unknown attribute {name!r}; this model's attributes: {known}")
        if (name, precision) not in self._attribute_denoisers:
            index = self.attribute_names.index(name) if name else len(self.attribute_names)
            network = self.denoiser_in(precision)
            noise = functools.partial(_with_attribute, network.noise_fn, index)
            energy = None
            if network.has_energy:
                energy = functools.partial(_with_attribute, network.energy_fn, index)
            self._attribute_denoisers[name, precision] = Denoiser(network.params, noise, energy)
        return self._attribute_denoisers[name, precision]

    def _network_denoiser(self, dtype) -> Denoiser:
        if self.kind != "diffusion":
            raise CheckpointError(f"{self.run_dir}: holds a {self.kind} model, not a diffusion one")
        config = self.config
        unet = make_unet(config, self.transition_dim)
        energy = None
        if config.diffusion.parameterization == "energy":
            energy = in_precision(make_energy_fn(unet, config.diffusion.energy_form), dtype)
        return network_denoiser(
            self.params,
            in_precision(make_predict_fn(unet, config), dtype),
            self.schedule,
            config.diffusion.predict_epsilon,
            energy,
        )

    def value_apply(self):
        """``apply(params, x [B, H, D], t [B]) -> [B]`` of a value run."""
        if self.kind != "value":
            raise CheckpointError(f"{self.run_dir}: holds a {self.kind} model, not a value model")
        model = self.config.model
        return ValueNet(model.dim, model.dim_mults, model.kernel_size, model.attention).apply

    def bc_apply(self):
        """``apply(params, observations [B, O]) -> actions [B, A]`` (normalized) of a
        behaviour-cloning run."""
        if self.kind != "bc":
            raise CheckpointError(f"{self.run_dir}: holds a {self.kind} model, not a BC policy")
        return BehaviourCloning(self.layout.action_dim).apply

    def inverse_dynamics_apply(self):
        """``apply(params, observations [B, O], next_observations [B, O]) -> actions [B, A]``
        (normalized) of an inverse-dynamics run."""
        if self.kind != "invdyn":
            raise CheckpointError(
                f"{self.run_dir}: holds a {self.kind} model, not an inverse-dynamics one "
                f"(`planner train-invdyn`)"
            )
        return InverseDynamics(self.layout.action_dim).apply


def _with_attribute(network_fn, index: int, params: Any, x: jax.Array, t: jax.Array) -> jax.Array:
    """``network_fn`` (noise or energy) with attribute ``index`` for every sample."""
    return network_fn(params, x, t, jnp.full(t.shape, index, jnp.int32))


def _saved_steps(run_dir: Path) -> tuple[ocp.CheckpointManager, list[int]]:
    """The checkpoint manager of a training run directory and its finished steps (at least
    one)."""
    if not (run_dir / "checkpoints").is_dir():
        raise CheckpointError(
            f"{run_dir}: not a training run (no checkpoints/ directory); train one with "
            f"`planner train --config FILE --run-dir {run_dir}`"
        )
    manager = checkpoint_manager(run_dir)
    steps = list(manager.all_steps())
    if not steps:
        raise CheckpointError(f"{run_dir}: has no finished checkpoint yet")
    return manager, steps


def latest_step(run_dir: str | Path) -> int:
    """The step of the checkpoint :func:`load_run` loads by default."""
    return max(_saved_steps(Path(run_dir))[1])


def load_run(run_dir: str | Path, step: int | None = None) -> TrainedRun:
    """The checkpoint at ``step`` (default: the latest) of a training run directory."""
    run_dir = Path(run_dir)
    manager, steps = _saved_steps(run_dir)
    step = max(steps) if step is None else step
    if step not in steps:
        raise CheckpointError(f"{run_dir}: no checkpoint at step {step}; saved: {sorted(steps)}")
    record = read_record(manager, step)
    config = config_from_dict(record["config"], f"{run_dir}/checkpoints/{step}")
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), normalizer=ocp.args.StandardRestore()
        ),
    )
    normalizer = Normalizer(**{k: jnp.asarray(v) for k, v in restored["normalizer"].items()})
    transition_dim = int(np.shape(normalizer.shift)[0])
    action_dim = record.get("action_dim")
    if action_dim is None:  # checkpoints written before the record kept it
        dims = expected_dimensions(config.data.dataset)
        if dims is None:
            raise CheckpointError(f"{run_dir}: checkpoint does not say its action dimension")
        action_dim = dims[1]
    data = config.data
    layout = declared_layout(
        action_dim,
        transition_dim - action_dim,
        data.position_dims,
        data.velocity_dims,
        str(run_dir),
    )
    params = restored["state"]["ema_params"]
    return TrainedRun(run_dir, config, record["kind"], step, params, normalizer, layout)
