"""From a trained run and a config to a :class:`Planner`: the run's model composed as the
``plan`` section says, with its constraints, objectives and the maze walls."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from planner.config import Config, ConfigError, apply_override, config_from_dict, config_to_dict
from planner.diffusion.denoisers import (
    Denoiser,
    composed_conditions,
    overlapping_windows,
    window_starts,
)
from planner.energies.base import Term
from planner.planning.maze import walls_term
from planner.planning.planner import Planner, sampler_spec, terms_from_config
from planner.planning.run import TrainedRun, load_run
from planner.tasks.maze2d import MazeTask


def plan_config(
    run: TrainedRun,
    config_file: Path | None,
    overrides: Sequence[str],
    sections_allowed: Sequence[str] = ("plan",),
) -> Config:
    """The run's config with its ``plan`` section, and every other section of
    ``sections_allowed`` that ``config_file`` has, replaced by ``config_file``'s (if given);
    then overrides of the ``sections_allowed`` applied. (The run's own record keeps the
    settings it was trained with; a config file edited since reaches the run only this way.)"""
    sections = config_to_dict(run.config)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: config file not found")
        raw = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{config_file}: needs a `plan:` mapping")
        for name in dict.fromkeys(("plan", *sections_allowed)):
            section = raw.get(name) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{config_file}: `{name}:` must be a mapping")
            if name == "plan" or name in raw:
                sections[name] = section
    for override in overrides:
        if override.split(".", 1)[0] not in sections_allowed:
            allowed = ", ".join(f"{name}.*" for name in sections_allowed)
            raise ConfigError(f"--set {override}: only {allowed} settings can change here")
        apply_override(sections, override)
    return config_from_dict(sections, str(config_file or run.run_dir / "config.yaml"))


def plan_denoiser(run: TrainedRun, config: Config, horizon: int) -> Denoiser:
    """The run's model as ``config.plan`` composes it: attribute conditions (``require``,
    ``exclude``) by classifier-free guidance, then overlapping windows (``window_stride``) for
    plans longer than the training horizon (a plan of one window is the model itself).
    ``ValueError`` for settings the run cannot take."""
    plan = config.plan
    denoiser = run.denoiser_in(plan.precision)
    if plan.require or plan.exclude:
        denoiser = composed_conditions(
            run.attribute_denoiser(None, plan.precision),
            [run.attribute_denoiser(name, plan.precision) for name in plan.require],
            [run.attribute_denoiser(name, plan.precision) for name in plan.exclude],
            plan.attribute_guidance,
        )
    if plan.window_stride is not None:
        window, stride = config.data.horizon, config.model.temporal_stride
        starts = window_starts(horizon, window, plan.window_stride)
        if (window - plan.window_stride) % stride:
            raise ValueError(
                f"plan.window_stride must leave overlaps (H - stride = "
                f"{window - plan.window_stride}) that are a multiple of {stride}"
            )
        if len(starts) == 1:
            return denoiser
        denoiser = overlapping_windows(
            denoiser,
            window,
            plan.window_stride,
            run.schedule,
            run.layout.action_dim,
            config.diffusion.condition_start,
            config.diffusion.condition_goal,
        )
    return denoiser


def related_run_dir(template: str, run_dir: Path) -> Path:
    """The run a ``value`` objective or ``plan.inverse_dynamics`` names: a path, in which
    ``{run}`` stands for the diffusion run's directory (``{run}-value`` is where `planner
    train-value` puts the value run of the same config, ``{run}-invdyn`` where `planner
    train-invdyn` puts its inverse-dynamics run)."""
    return Path(template.replace("{run}", str(run_dir)))


def build_planner(
    run: TrainedRun, config: Config, task: MazeTask | None, step: int = 0
) -> tuple[Planner, list[Term], list[str]]:
    """``(planner, terms, labels)`` for ``config.plan`` on ``run`` at episode step ``step``: the
    constraints in force then (``appears_at``) and the objectives, plus, for a Maze2D ``task``,
    the maze walls (unless ``plan.walls: off``); ``labels`` name each term's config entry."""
    plan = config.plan
    if config.data.jump > 1 and any(spec.get("type") == "value" for spec in plan.objectives):
        raise ConfigError(
            "a value objective scores windows of consecutive steps; this run's model plans "
            f"subgoals {config.data.jump} steps apart (data.jump)"
        )
    value_runs = {
        spec["run"]: load_run(related_run_dir(spec["run"], run.run_dir))
        for spec in plan.objectives
        if spec.get("type") == "value"
    }
    try:
        terms = terms_from_config(plan, run.layout, value_runs, step)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    walls = task is not None and plan.walls != "off"
    if walls:
        terms.append(walls_term(task, run.layout, guide=plan.walls == "guide"))
    horizon = plan.horizon or config.data.horizon
    stride = config.model.temporal_stride
    if horizon % stride:
        raise ConfigError(f"plan.horizon must be a multiple of {stride}; got {horizon}")
    spec = sampler_spec(plan, config.diffusion.clip_denoised)
    try:
        denoiser = plan_denoiser(run, config, horizon)
        planner = Planner(
            denoiser, run.schedule, run.normalizer, run.layout, horizon, spec, terms, plan.select,
            jump=config.data.jump,
        )  # fmt: skip
    except ValueError as error:
        raise ConfigError(str(error)) from None
    labels = [
        f"plan.constraints[{i}]"
        for i, spec in enumerate(plan.constraints)
        if spec.get("appears_at", 0) <= step
    ]
    labels += [f"plan.objectives[{i}]" for i in range(len(plan.objectives))]
    labels += ["plan.walls"] * walls
    return planner, terms, labels
