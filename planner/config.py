"""Typed, frozen run configuration loaded from YAML with strict validation.

A config file has one mapping per section (``data``, ``model``, ``diffusion``, ``train``, ``plan``,
``eval``, ``logging``). Every field is declared below with its type, default, allowed range and a
one-line doc; ``planner config docs`` prints them all. Unknown keys, wrong types and out-of-range
values raise :class:`ConfigError` naming the file, the key and what is allowed.

Overrides use dotted keys, ``train.steps=1000``; the value is parsed as YAML (``[1, 2]``, ``null``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from planner.data.attributes import attributes_from_specs
from planner.errors import ConfigError
from planner.tasks import generated_family, get_task
from planner.tasks.gym import check_env_id


def _field(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    length: int | None = None,
) -> Any:
    """A dataclass field carrying its documentation and numeric bounds (applied per element)."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    metadata = {"doc": doc, "bounds": {k: v for k, v in bounds.items() if v is not None}}
    if length is not None:
        metadata["length"] = length
    if isinstance(default, list):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class DataConfig:
    """Where trajectories come from and how they are cut into training windows."""

    dataset: str = _field(
        "maze2d-umaze-v1",
        "Dataset: a Maze2D id, a locomotion name (hopper-medium-v2, ...) or an OGBench name "
        "(pointmaze-medium-stitch-v0, ...) when source=generated; a D4RL name or .hdf5 path "
        "when source=d4rl; a Minari id when source=minari; OGBench's .npz (path or name) when "
        "source=ogbench.",
    )
    env: str | None = _field(
        None,
        "Gymnasium environment id that `planner eval` runs, for datasets of your own (e.g. "
        "InvertedPendulum-v5; module:Env-v0 imports module first); null = the task the dataset "
        "name implies (Maze2D, hopper, walker2d, halfcheetah). Its observation and action "
        "dimensions must match the dataset's.",
    )
    source: Literal["generated", "d4rl", "minari", "ogbench"] = _field(
        "generated",
        "Where the dataset is read from (generated = by planner data generate; ogbench = "
        "OGBench's own .npz, a path or a name in ~/.ogbench/data).",
    )
    data_dir: str | None = _field(
        None, "Directory of generated datasets; null = $PLANNER_DATA_DIR or ~/.cache/planner."
    )
    generate_steps: int | None = _field(
        None,
        "Steps to generate when the file is missing; null = the task default (Maze2D 1M-4M, "
        "locomotion 1M per behaviour policy).",
        ge=1000,
    )
    generate_seed: int = _field(0, "Seed of the Maze2D data generator.", ge=0)
    segmentation: Literal["timeouts", "eval_goal"] = _field(
        "timeouts",
        "Episode boundaries: the file's timeouts/terminals flags, or (Maze2D, as Diffuser) "
        "the steps where the agent leaves the evaluation goal.",
    )
    horizon: int = _field(128, "Window length H in rows (environment steps when jump is 1).", ge=1)
    jump: int = _field(
        1,
        "Environment steps between consecutive rows. Above 1 the model is a jumpy (high-level) "
        "planner: its H rows are subgoals spanning (H - 1) * jump + 1 steps, executed along "
        "their linear interpolation.",
        ge=1,
    )
    padding: bool = _field(
        False,
        "Allow windows that run past an episode's end (the last observation is repeated with "
        "zero action); if false, episodes shorter than the window's span are skipped.",
    )
    rest_dims: tuple[int, ...] = _field(
        (),
        "Observation dimensions set to zero on padded rows: the velocities, so the agent is at "
        "rest past its episode's end (Maze2D: [2, 3]).",
    )
    position_dims: tuple[int, ...] | None = _field(
        None,
        "Observation dimensions that are positions, which goals and constraints (circle, box, "
        "bounds, pass_through, path_length) act on; null = [0, 1] (Maze2D's x, y).",
        ge=0,
    )
    velocity_dims: tuple[int, ...] | None = _field(
        None,
        "Observation dimensions that are velocities, which max_speed acts on; null = [2, 3] "
        "(Maze2D's).",
        ge=0,
    )
    normalizer: Literal["limits", "gaussian"] = _field(
        "limits", "Per-dimension normalization: limits to [-1, 1], or zero mean and unit variance."
    )
    discount: float = _field(0.99, "Discount of the return-to-go value targets.", gt=0, le=1)
    termination_penalty: float = _field(
        0.0, "Reward added at terminal steps (true environment ends) for value targets."
    )
    download: bool = _field(
        False, "Minari only: allow downloading the dataset if it is not stored locally."
    )
    attributes: tuple[dict, ...] = _field(
        (),
        "Yes/no window attributes an attribute-conditioned model learns, e.g. [{name: right, "
        "type: passes, low: [x, y], high: [x, y]}]; types: passes, ends_in (README).",
    )


@dataclass(frozen=True)
class ModelConfig:
    """Temporal U-Net denoiser (read by `planner train`)."""

    dim: int = _field(32, "Channels of the first U-Net level.", ge=1)
    dim_mults: tuple[int, ...] = _field((1, 4, 8), "Channel multiplier of each level.", ge=1)
    kernel_size: int = _field(5, "Temporal convolution kernel size (odd).", ge=1)
    attention: bool = _field(False, "Add linear attention blocks to each level.")

    @property
    def temporal_stride(self) -> int:
        """Steps of the input that one step of the deepest level spans (the U-Net halves the
        horizon at every level but the last): horizons and window overlaps are multiples."""
        return 2 ** (len(self.dim_mults) - 1)


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and training objective (read by `planner train`)."""

    n_diffusion_steps: int = _field(64, "Number of noise levels.", ge=1)
    predict_epsilon: bool = _field(False, "Predict the noise instead of the clean trajectory.")
    parameterization: Literal["score", "energy"] = _field(
        "score",
        "Network output: a direct prediction, or a scalar energy whose gradient is the noise "
        "prediction (needs predict_epsilon: true).",
    )
    energy_form: Literal["norm", "residual"] = _field(
        "norm",
        "Energy from the network output f: ½‖f(x, t)‖² (norm) or ½‖f(x, t) − x‖² (residual).",
    )
    condition_start: bool = _field(
        True,
        "Impose the window's first observation during training; false = a model of whole "
        "windows, e.g. for planning horizons longer than H from overlapping windows.",
    )
    condition_goal: bool = _field(
        True, "Impose the window's last observation (the goal) as well as its first."
    )
    unconditional_probability: float = _field(
        0.25,
        "Attribute-conditioned models: the fraction of training windows shown without an "
        "attribute (the unconditional model that classifier-free guidance needs).",
        ge=0,
        le=1,
    )
    action_weight: float = _field(1.0, "Loss weight of the first action.", ge=0)
    loss_discount: float = _field(1.0, "Per-step loss weight discount along the horizon.", gt=0)
    clip_denoised: bool = _field(True, "Clip the predicted clean trajectory to [-1, 1].")


@dataclass(frozen=True)
class TrainConfig:
    """Optimization (read by `planner train`)."""

    steps: int = _field(2_000_000, "Number of gradient steps.", ge=1)
    batch_size: int = _field(32, "Windows per gradient step.", ge=1)
    learning_rate: float = _field(2e-4, "Adam learning rate after warm-up.", gt=0)
    warmup_steps: int = _field(0, "Linear learning-rate warm-up steps.", ge=0)
    grad_clip: float | None = _field(None, "Global gradient-norm clip; null = none.", gt=0)
    ema_decay: float = _field(0.995, "Decay of the parameter moving average.", ge=0, lt=1)
    ema_every: int = _field(10, "Steps between moving-average updates.", ge=1)
    ema_start: int = _field(2000, "Before this step the average is a copy of the parameters.", ge=0)
    value_steps: int = _field(200_000, "Gradient steps of `planner train-value`.", ge=1)
    bc_steps: int = _field(
        100_000, "Gradient steps of `planner train-bc` (the behaviour-cloning baseline).", ge=1
    )
    goal_value_steps: int = _field(
        100_000,
        "Gradient steps of `planner train-goal-value` (the temporal distance that "
        "eval.subgoal_value picks subgoals with).",
        ge=1,
    )
    invdyn_steps: int = _field(
        20_000,
        "Gradient steps of `planner train-invdyn` (the inverse-dynamics model that "
        "plan.inverse_dynamics acts with).",
        ge=1,
    )
    steps_per_dispatch: int = _field(10, "Gradient steps per jitted call (lax.scan).", ge=1)
    checkpoint_every: int = _field(10_000, "Steps between checkpoints.", ge=1)
    keep_checkpoints: int | None = _field(
        3, "Checkpoints kept (the latest); null = all, e.g. to score every one.", ge=1
    )
    log_every: int = _field(100, "Steps between metric records.", ge=1)
    seed: int = _field(0, "Seed of parameter initialization and batch sampling.", ge=0)


@dataclass(frozen=True)
class PlanConfig:
    """What `planner plan` is asked to do: conditions, energies and the sampler."""

    start: tuple[float, ...] | None = _field(
        None, "Start position (x, y) in D4RL coordinates; null = from the environment.", length=2
    )
    goal: tuple[float, ...] | None = _field(
        None,
        "Goal position (x, y), inpainted at the last step with zero velocity; null = the task's "
        "goal.",
        length=2,
    )
    waypoints: tuple[dict, ...] = _field(
        (), "Hard waypoints: [{step: 40, position: [x, y]}], inpainted at that step."
    )
    constraints: tuple[dict, ...] = _field(
        (),
        "Constraint terms, e.g. [{type: circle, center: [2, 2], radius: 0.5, weight: 10}]; "
        "types: circle, box, bounds, max_speed, pass_through (README).",
    )
    objectives: tuple[dict, ...] = _field(
        (),
        "Soft terms, e.g. [{type: goal, goal: [1, 1]}]; types: goal, smoothness, "
        "action_magnitude, path_length, value (with run: VALUE_RUN_DIR; {run} stands for the "
        "diffusion run's directory, e.g. run: '{run}-value').",
    )
    walls: Literal["select", "guide", "off"] = _field(
        "select",
        "Maze2D walls as a hard constraint: select = only to rank candidates, guide = also "
        "guidance steps, off = ignored (tasks without walls ignore it).",
    )
    horizon: int | None = _field(
        None, "Plan length; null = the training horizon (a multiple of the U-Net's stride).", ge=1
    )
    window_stride: int | None = _field(
        None,
        "Plan longer than the training horizon H as a product of the model on overlapping H-step "
        "windows this many steps apart (plan.horizon = H + k * stride); null = one window.",
        ge=1,
    )
    method: Literal["ddpm", "ddim"] = _field("ddpm", "Sampler: ddpm (the reference) or ddim.")
    n_steps: int | None = _field(None, "DDIM noise levels; null = every level.", ge=1)
    eta: float = _field(0.0, "DDIM stochasticity (1 with every level = DDPM).", ge=0)
    noise_scale: float = _field(
        1.0,
        "Sampling temperature: multiplies the initial noise and every step's noise (1 = the "
        "reference; below 1 samples nearer the model's mode).",
        ge=0,
    )
    corrector: Literal["none", "ula", "mala", "hmc"] = _field(
        "none", "MCMC corrector at every level; mala needs an energy-parameterized model."
    )
    corrector_steps: int = _field(0, "Corrector steps per noise level.", ge=0)
    corrector_step_size: float = _field(
        0.1, "Corrector step size as a fraction of the level's noise variance.", gt=0
    )
    target_accept: float = _field(
        0.57, "Acceptance rate the Metropolis step size adapts to.", gt=0, lt=1
    )
    leapfrog_steps: int = _field(3, "HMC leapfrog steps per corrector step.", ge=1)
    smc: bool = _field(
        False,
        "Sequential Monte Carlo over each query's candidates: reweight them at every noise level "
        "by the change of their composed energy and resample when the effective sample size "
        "drops (draws from the model times exp(-energy / energy_temperature)).",
    )
    ess_threshold: float = _field(
        0.5, "SMC resamples when the effective sample size falls below this fraction.", ge=0, le=1
    )
    energy_temperature: float = _field(
        1.0,
        "T of the composed target p_model · exp(-Σ w_k E_k / T), for smc and select: resample.",
        gt=0,
    )
    loop: Literal["auto", "scan", "python"] = _field(
        "auto",
        "Iterate noise levels in one lax.scan (one dispatch) or one jitted level per dispatch; "
        "auto = python on CPU from 32 samples per call (faster there), scan otherwise.",
    )
    precision: Literal["float32", "bfloat16"] = _field(
        "float32",
        "Compute dtype of the diffusion network while planning; bfloat16 is mixed precision for "
        "accelerators (on CPU it is emulated and slower).",
    )
    require: tuple[str, ...] = _field(
        (), "Attribute-conditioned models: attributes every plan should have (all of them)."
    )
    exclude: tuple[str, ...] = _field(
        (), "Attribute-conditioned models: attributes no plan should have."
    )
    attribute_guidance: float = _field(
        2.0,
        "Classifier-free guidance weight w of each required (+w) and excluded (-w) attribute: "
        "ε = ε_∅ + w Σ (ε_required - ε_∅) - w Σ (ε_excluded - ε_∅).",
        ge=0,
    )
    impose_goal: bool = _field(
        True,
        "Inpaint the goal at the plan's last step; false = plans fixed at the start only "
        "(e.g. when attributes say where to go).",
    )
    n_candidates: int = _field(1, "Plans sampled per query; the best one is returned.", ge=1)
    select: Literal["energy", "value", "resample"] = _field(
        "energy",
        "Pick the candidate with the lowest total energy, or the highest value, or draw one with "
        "probability ∝ exp(-total energy / energy_temperature) (importance resampling).",
    )
    average_best: int = _field(
        1,
        "Execute the mean of the k best candidates (by `select`); 1 = the best one. Averages "
        "out the behaviour noise each sample carries (locomotion).",
        ge=1,
    )
    inverse_dynamics: str | None = _field(
        None,
        "Locomotion: act with this inverse-dynamics run (`planner train-invdyn`; {run} stands "
        "for the diffusion run's directory, e.g. '{run}-invdyn'): the action taking the current "
        "observation to the executed plan's next one, instead of the plan's own action; null = "
        "the plan's action.",
    )
    seed: int = _field(0, "Seed of the sampler.", ge=0)


@dataclass(frozen=True)
class EvalConfig:
    """Simulator evaluation (read by `planner eval`)."""

    episodes: int = _field(100, "Evaluation episodes.", ge=1)
    seed: int = _field(0, "Seed of the start (and goal) distribution.", ge=0)
    multi_task: bool = _field(False, "Random goal per episode (Multi2D) instead of the fixed one.")
    policy: Literal["open_loop", "mpc", "route", "straight"] = _field(
        "open_loop",
        "open_loop: one plan per episode, tracked (the D4RL protocol). mpc: receding-horizon "
        "control, replanning by the rules below and holding the goal once reached. route "
        "(Maze2D): a baseline with no model, map-assisted: mpc whose plans are the shortest "
        "free route around the known walls and the plan's obstacles at eval.route_speed, "
        "followed by the same rules, tracking or pursuit and latch (warm_start_level and "
        "arrival_search do not apply: a route arrives as early as it can). straight "
        "(OGBench): a baseline with no model: mpc whose plans are straight lines to the goal, "
        "or to eval.subgoal_value's subgoals (what the learned subgoals do alone).",
    )
    replan_every: int = _field(
        0, "mpc: plan again after this many steps of a plan (0 = not on a schedule).", ge=0
    )
    replan_deviation: float = _field(
        0.0,
        "mpc: plan again when the position is farther than this from the plan's position for "
        "the current step (environment units; 0 = never).",
        ge=0,
    )
    pin_arrival: bool = _field(
        True,
        "mpc: replans impose the goal from the previous plan's arrival step on, so the arrival "
        "does not recede as steps are executed.",
    )
    latch: bool = _field(
        True, "mpc: within the goal radius stop planning and hold the goal at rest."
    )
    warm_start_level: int | None = _field(
        None,
        "Replans re-noise the previous plan (shifted by the executed steps) to this level and "
        "denoise from there; null = replans start from noise.",
        ge=0,
    )
    lookahead: float | None = _field(
        None,
        "How plans become actions. null: Diffuser's tracking of the plan's next state in time. "
        "A distance (environment units): pursue the point that far ahead along the plan's path "
        "at the plan's speed, so an agent lagging its plan still turns where the plan turns.",
        gt=0,
    )
    arrival_search: int = _field(
        0,
        "Maze2D: plans without an imposed arrival (an episode's first) also try the goal from "
        "1/n, 2/n, ..., (n-1)/n of the plan's steps and keep the earliest the point mass can "
        "follow (no step faster than the speed limit, none through a wall or obstacle): plans "
        "arrive as soon as they can instead of filling their horizon, for up to n - 1 more "
        "planner calls per such plan. 0 = the goal on the last row only.",
        ge=0,
    )
    route_reach: float | None = _field(
        None,
        "Maze2D: when the goal is farther than this (metres along the shortest free route "
        "around the maze's walls and the plan's obstacles), plan toward the point this far "
        "along that route instead, and toward the goal once it is within reach. For goals "
        "beyond what one plan can cover, such as detours around a new obstacle. null: always "
        "plan to the goal.",
        gt=0,
    )
    subgoal_value: str | None = _field(
        None,
        "Plan toward subgoals chosen by this goal-conditioned value run (`planner "
        "train-goal-value`; {run} stands for the diffusion run's directory, e.g. "
        "'{run}-goalvalue'): where the value puts the goal beyond eval.subgoal_reach steps, "
        "aim at the dataset observation it puts within reach and nearest the goal. Learned, "
        "no walls or map. null: always plan to the goal.",
    )
    subgoal_reach: float = _field(
        100.0,
        "eval.subgoal_value: environment steps a plan can cover, as the value counts them.",
        gt=0,
    )
    subgoal_edge: float | None = _field(
        None,
        "eval.subgoal_value: trust the value only over this many steps: the subgoal is the "
        "farthest waypoint within eval.subgoal_reach along the shortest route through the graph "
        "of waypoints the value puts this close (learned from the value and data, not the map). "
        "null: the waypoint within reach nearest the goal.",
        gt=0,
    )
    route_speed: float = _field(
        3.0, "policy route: the speed along the route (m/s; the simulator's limit is 5).", gt=0
    )
    batch_size: int = _field(25, "Episodes planned and simulated together.", ge=1)


@dataclass(frozen=True)
class LoggingConfig:
    """Where runs are written and whether W&B sees them."""

    run_root: str = _field("runs", "Directory under which run directories are created.")
    wandb: bool = _field(False, "Log metrics to Weights & Biases.")
    wandb_project: str = _field("planner", "W&B project name.")
    wandb_mode: Literal["offline", "online"] = _field(
        "offline", "W&B mode; offline never needs a network."
    )


@dataclass(frozen=True)
class Config:
    """A whole run: one frozen dataclass per section."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


SECTIONS: dict[str, type] = {
    spec.name: typing.get_type_hints(Config)[spec.name] for spec in dataclasses.fields(Config)
}


# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config file, apply ``section.key=value`` overrides, validate, and freeze."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    sections = {name: dict(_section(raw, name, str(path))) for name in raw}
    for override in overrides:
        apply_override(sections, override)
    return config_from_dict(sections, str(path))


def config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a ``{section: {key: value}}`` mapping into a :class:`Config`."""
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: {_unknown(name, SECTIONS)}")
    built = {
        name: _build_section(cls, _section(raw, name, source), source, name)
        for name, cls in SECTIONS.items()
    }
    config = Config(**built)
    _check_consistency(config, source)
    return config


def _section(raw: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: section '{name}' must be a mapping of key: value")
    return value


def apply_override(sections: dict[str, dict[str, Any]], override: str) -> None:
    source = f"--set {override}"
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"{source}: overrides look like section.key=value, e.g. train.steps=1000")
    if section not in SECTIONS:
        raise ConfigError(f"{source}: {_unknown(section, SECTIONS)}")
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    if name not in fields:
        raise ConfigError(f"{source}: {_unknown(name, fields, section + '.')}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: value is not valid YAML: {error}") from None
    label = f"{source}: {section}.{name}"
    checked = _coerce(value, typing.get_type_hints(SECTIONS[section])[name], label)
    _check_bounds(checked, fields[name].metadata, label)
    sections.setdefault(section, {})[name] = value


def _unknown(name: str, known: Iterable[str], prefix: str = "") -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"known: {', '.join(known)}"
    return f"{prefix}{name} is not a known key; {hint}"


def _build_section(cls: type, raw: Mapping[str, Any], source: str, section: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{source}: {_unknown(key, fields, section + '.')}")
    values = {}
    for key, value in raw.items():
        spec = fields[key]
        label = f"{source}: {section}.{key}"
        values[key] = _coerce(value, hints[key], label)
        _check_bounds(values[key], spec.metadata, label)
    return cls(**values)


# The words YAML 1.1 reads as each boolean, so that a choice documented as ``off`` takes ``off``.
_YAML_BOOLEANS = {True: ("on", "yes", "true"), False: ("off", "no", "false")}


def _coerce(value: Any, hint: Any, label: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert YAML lists to tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, label)
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            value = next((word for word in _YAML_BOOLEANS[value] if word in args), value)
        if value not in args:
            allowed = ", ".join(map(str, args))
            raise ConfigError(f"{label} must be one of {allowed}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{label} must be a list; got {value!r}")
        return tuple(_coerce(item, args[0], f"{label}[{i}]") for i, item in enumerate(value))
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{label} must be a mapping of key: value; got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false; got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} must be an integer; got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{label} must be a number; got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string; got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for {label}")


_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_TEST = {
    "ge": lambda x, b: x >= b,
    "gt": lambda x, b: x > b,
    "le": lambda x, b: x <= b,
    "lt": lambda x, b: x < b,
}


def _check_bounds(value: Any, metadata: Mapping[str, Any], label: str) -> None:
    if value is None:
        return
    items = value if isinstance(value, tuple) else (value,)
    length = metadata.get("length")
    if isinstance(value, tuple) and length is not None and len(value) != length:
        raise ConfigError(f"{label} must have {length} entries; got {len(value)}")
    for item in items:
        if isinstance(item, str):
            continue
        for kind, bound in metadata.get("bounds", {}).items():
            if not _BOUND_TEST[kind](item, bound):
                raise ConfigError(f"{label} must be {_BOUND_TEXT[kind]} {bound}; got {value!r}")


def _check_consistency(config: Config, source: str) -> None:
    """Rules that involve more than one field."""
    data, model = config.data, config.model
    if data.env is not None:
        try:
            check_env_id(data.env)
        except ValueError as error:
            raise ConfigError(f"{source}: data.env {error}") from None
    if data.source == "generated":
        try:
            generated_family(data.dataset, data.env)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
    named = get_task(data.dataset)
    if data.segmentation == "eval_goal" and (named is None or named.family != "maze2d"):
        raise ConfigError(
            f"{source}: data.segmentation eval_goal needs a Maze2D dataset; got {data.dataset!r}"
        )
    if data.attributes:
        try:
            attributes_from_specs(data.attributes)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
    if config.diffusion.parameterization == "energy" and not config.diffusion.predict_epsilon:
        raise ConfigError(
            f"{source}: diffusion.parameterization energy needs diffusion.predict_epsilon: true "
            f"(the energy's gradient is the noise prediction)"
        )
    train = config.train
    for name in (
        "steps",
        "value_steps",
        "bc_steps",
        "goal_value_steps",
        "invdyn_steps",
        "log_every",
        "checkpoint_every",
    ):
        if getattr(train, name) % train.steps_per_dispatch:
            raise ConfigError(
                f"{source}: train.{name} must be a multiple of train.steps_per_dispatch "
                f"({train.steps_per_dispatch}); got {getattr(train, name)}"
            )
    evaluation = config.eval
    if evaluation.policy == "straight" and (named is None or named.family != "ogbench"):
        raise ConfigError(
            f"{source}: eval.policy straight is a baseline for OGBench's mazes; got "
            f"{data.dataset!r}"
        )
    replans = evaluation.replan_every > 0 or evaluation.replan_deviation > 0
    if evaluation.policy == "open_loop" and replans:
        raise ConfigError(
            f"{source}: eval.replan_every and eval.replan_deviation need eval.policy: mpc "
            f"(open_loop plans once per episode)"
        )
    plan = config.plan
    if plan.average_best > plan.n_candidates:
        raise ConfigError(
            f"{source}: plan.average_best ({plan.average_best}) cannot exceed plan.n_candidates "
            f"({plan.n_candidates}): it averages the best of the candidates sampled"
        )
    if model.kernel_size % 2 == 0:
        raise ConfigError(f"{source}: model.kernel_size must be odd; got {model.kernel_size}")
    stride = model.temporal_stride
    if data.horizon % stride:
        raise ConfigError(
            f"{source}: data.horizon must be a multiple of {stride} (the U-Net halves it "
            f"{len(model.dim_mults) - 1} times for model.dim_mults {list(model.dim_mults)}); "
            f"got {data.horizon}"
        )


# --- saving and documentation ----------------------------------------------------------------


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain ``{section: {key: value}}`` with lists for tuples, suitable for YAML or JSON."""

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    return {
        name: {k: plain(v) for k, v in dataclasses.asdict(getattr(config, name)).items()}
        for name in SECTIONS
    }


def save_config(config: Config, path: str | Path) -> Path:
    """Write the fully resolved config (every field, defaults included) as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


def describe_fields() -> str:
    """A markdown table of every config field: key, type, default and doc."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for spec in dataclasses.fields(cls):
            hint = hints[spec.name]
            kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            default = config_to_dict(Config())[name][spec.name]
            rows.append(
                f"| `{name}.{spec.name}` | `{kind}` | `{default}` | {spec.metadata['doc']} |"
            )
    return "\n".join(rows)
