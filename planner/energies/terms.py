"""Energy terms that ship, in environment units, and their construction from config mappings.

Every factory takes a :class:`Layout` (which trajectory columns hold positions, velocities and
actions) and returns a :class:`~planner.energies.base.Term`. Constraint terms also carry a
violation measure in metres (or metres per second), zero when the constraint holds.

Penalties are smooth: the squared penetration ``relu(d)²`` summed over the horizon, so the
gradient pushes each offending step out by an amount proportional to how far in it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from planner.data.normalize import Normalizer
from planner.energies.base import Term, term
from planner.errors import ConfigError

EPSILON = 1e-9  # keeps norms differentiable at zero
GUIDANCE_KEYS = ("weight", "scale", "n_guide_steps", "t_stopgrad", "scale_grad_by_std", "on")


@dataclass(frozen=True)
class Layout:
    """Where things live in a trajectory row ``[action (A), observation (O)]``.

    ``position`` and ``velocity`` index the observation (Maze2D: ``[x, y, vx, vy]``; a run's
    ``data.position_dims`` and ``data.velocity_dims``). Raises ``ValueError`` for an index
    outside the observation.
    """

    action_dim: int
    observation_dim: int
    position: tuple[int, ...] = (0, 1)
    velocity: tuple[int, ...] = (2, 3)

    def __post_init__(self) -> None:
        for name in ("position", "velocity"):
            outside = [i for i in getattr(self, name) if not 0 <= i < self.observation_dim]
            if outside:
                raise ValueError(
                    f"{name} dimensions {outside} are outside the observation's "
                    f"{self.observation_dim} dimensions (0 to {self.observation_dim - 1})"
                )

    @property
    def position_columns(self) -> tuple[int, ...]:
        return tuple(self.action_dim + i for i in self.position)

    @property
    def velocity_columns(self) -> tuple[int, ...]:
        return tuple(self.action_dim + i for i in self.velocity)

    @property
    def action_columns(self) -> tuple[int, ...]:
        return tuple(range(self.action_dim))


def declared_layout(
    action_dim: int,
    observation_dim: int,
    position_dims: Sequence[int] | None = None,
    velocity_dims: Sequence[int] | None = None,
    where: str = "config",
) -> Layout:
    """The layout a run's ``data.position_dims`` / ``data.velocity_dims`` declare; ``None``
    takes Maze2D's ``[0, 1]`` / ``[2, 3]``, those of them inside the observation. Raises
    ``ConfigError`` (prefixed by ``where``) for a declared index outside the observation."""

    def dims(declared: Sequence[int] | None, maze2d: tuple[int, ...]) -> tuple[int, ...]:
        if declared is None:
            return tuple(i for i in maze2d if i < observation_dim)
        return tuple(declared)

    try:
        return Layout(
            action_dim, observation_dim, dims(position_dims, (0, 1)), dims(velocity_dims, (2, 3))
        )
    except ValueError as error:
        raise ConfigError(f"{where}: data.position_dims / velocity_dims: {error}") from None


def _array(value: Sequence[float] | float, length: int | None = None) -> jax.Array:
    """``value`` as float32, checked to be a number (``length`` None) or ``length`` numbers."""
    array = jnp.asarray(value, jnp.float32)
    expected = () if length is None else (length,)
    if array.shape != expected:
        what = "a number" if length is None else f"{length} numbers"
        raise ValueError(f"expected {what}; got {value!r}")
    return array


def _norm(vectors: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(vectors**2, axis=-1) + EPSILON)


# --- region geometry (positions [H, 2]) -------------------------------------------------------


def _circle_depth(positions: jax.Array, data: dict) -> jax.Array:
    """``[H]`` how far each position is inside the circle (negative outside)."""
    return data["radius"] - _norm(positions - data["center"])


def _box_depth(positions: jax.Array, data: dict) -> jax.Array:
    """``[H]`` how far each position is inside the boxes ``low``/``high`` [N, P] (the distance
    to the nearest side of the box it is deepest in; negative outside all of them)."""
    p = positions[:, None, :]
    inside = jnp.min(jnp.minimum(p - data["low"], data["high"] - p), axis=-1)
    return jnp.max(inside, axis=-1)


def _box_outside_distance(positions: jax.Array, data: dict) -> jax.Array:
    outside = jnp.maximum(data["low"] - positions, 0.0) + jnp.maximum(positions - data["high"], 0.0)
    return _norm(outside) - jnp.sqrt(EPSILON)


REGION_DEPTH: dict[str, Callable[[jax.Array, dict], jax.Array]] = {
    "circle": _circle_depth,
    "box": _box_depth,
}


# --- obstacles ----------------------------------------------------------------------------------


def _obstacle_energy(depth_fn: Callable) -> Callable:
    def energy(positions: jax.Array, t: jax.Array, data: dict) -> jax.Array:
        return jnp.sum(jax.nn.relu(depth_fn(positions, data) + data["margin"]) ** 2)

    return energy


def _obstacle_violation(depth_fn: Callable) -> Callable:
    def violation(positions: jax.Array, data: dict) -> jax.Array:
        return jnp.max(jax.nn.relu(depth_fn(positions, data)))

    return violation


_OBSTACLE = {
    shape: (_obstacle_energy(depth), _obstacle_violation(depth))
    for shape, depth in REGION_DEPTH.items()
}


def circle_obstacle(
    layout: Layout, center: Sequence[float], radius: float, margin: float = 0.1, **guidance
) -> Term:
    """Keep every position out of the disc ``|p - center| < radius`` (penalized from
    ``radius + margin`` on, so plans keep clear of the edge)."""
    data = {
        "center": _array(center, len(layout.position)),
        "radius": _array(radius),
        "margin": _array(margin),
    }
    return obstacle_term("circle", data, layout, guidance)


def box_obstacle(
    layout: Layout, low: Sequence[float], high: Sequence[float], margin: float = 0.1, **guidance
) -> Term:
    """Keep every position out of the axis-aligned box ``low <= p <= high``."""
    data = {
        "low": _array(low, len(layout.position))[None],
        "high": _array(high, len(layout.position))[None],
        "margin": _array(margin),
    }
    return obstacle_term("box", data, layout, guidance)


def obstacle_term(
    shape: str, data: dict, layout: Layout, guidance: dict, name: str | None = None
) -> Term:
    """A ``circle`` (``center``, ``radius``) or ``box`` (``low``, ``high`` [N, P]: any number of
    boxes) obstacle term from its arrays, with ``margin`` and the constraint defaults."""
    energy, violation = _OBSTACLE[shape]
    return term(
        energy, name or shape, data=data, columns=layout.position_columns,
        violation=violation, **_constraint_defaults(guidance),
    )  # fmt: skip


# --- bounds, speed, shape -------------------------------------------------------------------


def _bounds_excess(values: jax.Array, data: dict) -> jax.Array:
    return jax.nn.relu(data["low"] - values) + jax.nn.relu(values - data["high"])


def _bounds_energy(values: jax.Array, t: jax.Array, data: dict) -> jax.Array:
    return jnp.sum(_bounds_excess(values, data) ** 2)


def _bounds_violation(values: jax.Array, data: dict) -> jax.Array:
    return jnp.max(_bounds_excess(values, data))


def state_bounds(
    layout: Layout,
    low: Sequence[float],
    high: Sequence[float],
    dims: Sequence[int] | None = None,
    **guidance,
) -> Term:
    """Keep observation dimensions ``dims`` (default: the position) within ``[low, high]``."""
    dims = layout.position if dims is None else tuple(dims)
    data = {"low": _array(low, len(dims)), "high": _array(high, len(dims))}
    columns = tuple(layout.action_dim + d for d in dims)
    return term(
        _bounds_energy, "bounds", data=data, columns=columns, violation=_bounds_violation,
        **_constraint_defaults(guidance),
    )  # fmt: skip


def _speed_excess(velocities: jax.Array, data: dict) -> jax.Array:
    return jax.nn.relu(_norm(velocities) - data["limit"])


def _speed_energy(velocities: jax.Array, t: jax.Array, data: dict) -> jax.Array:
    return jnp.sum(_speed_excess(velocities, data) ** 2)


def _speed_violation(velocities: jax.Array, data: dict) -> jax.Array:
    return jnp.max(_speed_excess(velocities, data))


def max_speed(layout: Layout, limit: float, **guidance) -> Term:
    """Keep the speed ``|v|`` at or below ``limit`` at every step."""
    return term(
        _speed_energy, "max_speed", data={"limit": _array(limit)},
        columns=layout.velocity_columns, violation=_speed_violation,
        **_constraint_defaults(guidance),
    )  # fmt: skip


def _smoothness_energy(positions: jax.Array, t: jax.Array) -> jax.Array:
    return jnp.sum((positions[2:] - 2 * positions[1:-1] + positions[:-2]) ** 2)


def smoothness(layout: Layout, **guidance) -> Term:
    """Prefer straight paths: the summed squared second difference of positions."""
    return term(_smoothness_energy, "smoothness", columns=layout.position_columns, **guidance)


def _path_length_energy(positions: jax.Array, t: jax.Array) -> jax.Array:
    return jnp.sum(jnp.linalg.norm(positions[1:] - positions[:-1], axis=-1))


def path_length(layout: Layout, **guidance) -> Term:
    """Prefer short paths: the length of the position path. With ``n_guide_steps: 0`` it only
    ranks candidates (the one that gets there by the shortest way wins)."""
    return term(_path_length_energy, "path_length", columns=layout.position_columns, **guidance)


def _action_energy(actions: jax.Array, t: jax.Array) -> jax.Array:
    return jnp.sum(actions**2)


def action_magnitude(layout: Layout, **guidance) -> Term:
    """Prefer small actions: the summed squared action."""
    return term(_action_energy, "action_magnitude", columns=layout.action_columns, **guidance)


# --- regions and goals ------------------------------------------------------------------------


def _window_mask(horizon: int, data: dict) -> jax.Array:
    steps = jnp.arange(horizon)
    return (steps >= data["first"]) & (steps <= data["last"])


def _pass_through_distance(shape: str) -> Callable:
    def distance(positions: jax.Array, data: dict) -> jax.Array:
        """``[H]`` distance outside the region, infinite outside the step window."""
        if shape == "circle":
            outside = jax.nn.relu(-_circle_depth(positions, data))
        else:
            outside = _box_outside_distance(positions, data)
        return jnp.where(_window_mask(positions.shape[0], data), outside, jnp.inf)

    def energy(positions: jax.Array, t: jax.Array, data: dict) -> jax.Array:
        squared = distance(positions, data) ** 2
        temperature = data["temperature"]
        return -temperature * jax.nn.logsumexp(-squared / temperature)

    def violation(positions: jax.Array, data: dict) -> jax.Array:
        return jnp.min(distance(positions, data))

    return energy, violation


_PASS_THROUGH = {shape: _pass_through_distance(shape) for shape in ("circle", "box")}


def pass_through(
    layout: Layout,
    first: int,
    last: int,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    low: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
    temperature: float = 0.05,
    **guidance,
) -> Term:
    """Visit a region (a circle ``center``/``radius`` or a box ``low``/``high``) at some step
    between ``first`` and ``last``: a soft minimum over those steps of the squared distance
    outside the region."""
    if (center is None) == (low is None):
        raise ValueError("pass_through needs either center and radius, or low and high")
    if center is not None:
        if radius is None:
            raise ValueError("pass_through with a center needs a radius")
        shape, data = (
            "circle",
            {"center": _array(center, len(layout.position)), "radius": _array(radius)},
        )
    else:
        if high is None:
            raise ValueError("pass_through with low needs high")
        shape, data = (
            "box",
            {"low": _array(low, len(layout.position)), "high": _array(high, len(layout.position))},
        )
    data |= {"first": jnp.int32(first), "last": jnp.int32(last), "temperature": _array(temperature)}
    energy, violation = _PASS_THROUGH[shape]
    return term(
        energy, f"pass_through_{shape}", data=data, columns=layout.position_columns,
        violation=violation, **_constraint_defaults(guidance),
    )  # fmt: skip


def _goal_energy(positions: jax.Array, t: jax.Array, data: dict) -> jax.Array:
    return jnp.sum((positions[data["step"]] - data["goal"]) ** 2)


def goal_energy(layout: Layout, goal: Sequence[float], step: int = -1, **guidance) -> Term:
    """Soft goal: the squared distance of the position at ``step`` (default: the last) to
    ``goal``. The hard alternative is inpainting (``plan.goal``)."""
    data = {"goal": _array(goal, len(layout.position)), "step": jnp.int32(step)}
    return term(_goal_energy, "goal", data=data, columns=layout.position_columns, **guidance)


# --- learned value ----------------------------------------------------------------------------


def value_term(
    value_apply: Callable,
    params: Any,
    normalizer: Normalizer,
    scale: float = 0.1,
    n_guide_steps: int = 2,
    t_stopgrad: int = 2,
    scale_grad_by_std: bool = True,
    **guidance,
) -> Term:
    """``E = -V(x, t)``: a value network trained with ``planner train-value``, guiding the noisy
    sample with Diffuser's settings (scale 0.1, 2 steps, none below level 2, step times the
    posterior variance)."""

    def energy(trajectory: jax.Array, t: jax.Array, data: dict) -> jax.Array:
        x = data["normalizer"].normalize(trajectory)[None]
        return -value_apply(data["params"], x, jnp.reshape(t, (1,)))[0]

    return term(
        energy, "value", data={"params": params, "normalizer": normalizer}, scale=scale,
        n_guide_steps=n_guide_steps, t_stopgrad=t_stopgrad, scale_grad_by_std=scale_grad_by_std,
        on="noisy", **guidance,
    )  # fmt: skip


# --- from config -------------------------------------------------------------------------------

CONSTRAINT_TYPES: dict[str, Callable[..., Term]] = {
    "circle": circle_obstacle,
    "box": box_obstacle,
    "bounds": state_bounds,
    "max_speed": max_speed,
    "pass_through": pass_through,
}
OBJECTIVE_TYPES: dict[str, Callable[..., Term]] = {
    "goal": goal_energy,
    "smoothness": smoothness,
    "path_length": path_length,
    "action_magnitude": action_magnitude,
}
CONSTRAINT_DEFAULTS = {"weight": 10.0, "scale": 0.02, "n_guide_steps": 2}


def _constraint_defaults(guidance: dict) -> dict:
    return {**CONSTRAINT_DEFAULTS, **guidance}


def terms_from_specs(
    specs: Sequence[Mapping[str, Any]],
    layout: Layout,
    types: Mapping[str, Callable[..., Term]],
    label: str,
) -> list[Term]:
    """Build terms from config mappings such as ``{type: circle, center: [2, 2], radius: 0.5}``.

    Raises ``ValueError`` naming ``label[i].key`` for unknown types, unknown or missing keys and
    bad values.
    """
    built = []
    for index, spec in enumerate(specs):
        where = f"{label}[{index}]"
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in types:
            raise ValueError(f"{where}.type must be one of {', '.join(types)}; got {kind!r}")
        factory = types[kind]
        parameters = inspect.signature(factory).parameters
        allowed = [name for name in parameters if name not in ("layout", "guidance")]
        required = [
            name
            for name in allowed
            if parameters[name].default is inspect.Parameter.empty
            and parameters[name].kind is not inspect.Parameter.VAR_KEYWORD
        ]
        for key in spec:
            if key not in allowed and key not in GUIDANCE_KEYS:
                known = ", ".join([*allowed, *GUIDANCE_KEYS])
                raise ValueError(f"{where}.{key} is not a key of a {kind} term; known: {known}")
        missing = [name for name in required if name not in spec]
        if missing:
            raise ValueError(f"{where}: a {kind} term needs {', '.join(missing)}")
        try:
            built.append(factory(layout, **spec))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
    return built
