"""A planner: a denoiser, hard conditions, energy terms and a sampler, behind one call.

``Planner.plan(key, start [Q, O], goal [Q, P])`` samples ``N`` candidates for each of ``Q``
queries in one jitted call (query ``q`` from its own key, so its plans do not depend on the other
queries), scores every candidate with every term, and picks the best per query
(lowest total energy, or highest value), or draws one with probability ``∝ exp(-total / T)``
(``select: resample``, importance resampling of the candidates toward the composed product).
With ``smc`` in the sampler settings the candidates are one query's SMC particles, reweighted and
resampled at every noise level. All arrays in and out are in environment units.

A jumpy model (``jump = k > 1``, trained on rows ``k`` steps apart) samples ``H`` subgoal rows; the
planner returns their linear interpolation, one row per environment step (``(H - 1) k + 1``), and
takes steps (waypoints, ``goal_from``, warm starts) in environment steps too. Energy terms read the
interpolation during sampling, so a constraint holds on the segments between subgoals as well.

With several devices the ``Q × N`` samples are split over a one-axis mesh (``planner.runtime``),
the networks replicated; a sample draws only from its own key, so the plans equal those of one
device. A batch that the device count does not divide runs replicated instead.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from planner.config import PlanConfig
from planner.data.normalize import Normalizer
from planner.data.windows import interpolate_rows, window_span
from planner.diffusion.conditioning import endpoint_conditions
from planner.diffusion.denoisers import Denoiser
from planner.diffusion.samplers import SamplerSpec, sample, validate_spec
from planner.diffusion.schedule import Schedule
from planner.energies.base import Term, hard_terms, term_energies, term_weights, violations
from planner.energies.terms import (
    CONSTRAINT_TYPES,
    OBJECTIVE_TYPES,
    Layout,
    terms_from_specs,
    value_term,
)
from planner.planning.run import TrainedRun
from planner.runtime import data_mesh

DEFAULT_SPEC = SamplerSpec()


@dataclass(frozen=True)
class Plans:
    """``Q`` queries × ``N`` candidates, environment units.

    ``trajectories`` [Q, N, H, D]; ``energies`` [Q, N, K] unweighted per term (``term_names``);
    ``total`` [Q, N] weighted sum; ``violations`` [Q, N, C] per hard term (``hard_names``), 0 where
    it holds; ``order`` [Q, N] the candidates best first (``best`` [Q] the chosen one);
    ``acceptance`` [Q, N] corrector acceptance; ``ess`` [Q] the SMC effective sample size as
    a fraction of the candidates, averaged over levels (1 without SMC), and ``resamples`` [Q]
    the levels at which SMC resampled; ``jump`` the steps between the model's rows
    (``trajectories[..., ::jump, :]`` are its rows).
    """

    trajectories: np.ndarray
    energies: np.ndarray
    total: np.ndarray
    violations: np.ndarray
    order: np.ndarray
    acceptance: np.ndarray
    term_names: tuple[str, ...]
    hard_names: tuple[str, ...]
    jump: int = 1
    ess: np.ndarray | None = None
    resamples: np.ndarray | None = None

    @property
    def best(self) -> np.ndarray:
        """``[Q]`` the index of each query's selected (best-ranked) candidate."""
        return self.order[:, 0]

    @property
    def chosen(self) -> np.ndarray:
        """``[Q, H, D]`` the selected plan of each query."""
        return self.trajectories[np.arange(len(self.best)), self.best]

    def mean_of_best(self, count: int) -> np.ndarray:
        """``[Q, H, D]`` the mean of each query's ``count`` best-ranked candidates (``chosen``
        when ``count`` is 1), leaving out diverged ones unless all are: averaging the first
        actions of several good samples cancels part of the behaviour policy's noise that
        each sample reproduces."""
        if not 1 <= count <= self.order.shape[1]:
            raise ValueError(f"count must be in 1..{self.order.shape[1]}; got {count}")
        best = self.order[:, :count]
        picked = self.trajectories[np.arange(len(best))[:, None], best]
        finite = np.isfinite(picked).all(axis=(2, 3))
        kept = finite | (~finite.any(axis=1, keepdims=True) & (np.arange(count) == 0))
        weights = kept / kept.sum(axis=1, keepdims=True)
        return np.einsum("qk,qkhd->qhd", weights, np.where(kept[..., None, None], picked, 0))

    @property
    def knots(self) -> np.ndarray:
        """``[Q, N, H, D]`` the rows the model sampled (every step when ``jump`` is 1)."""
        return self.trajectories[..., :: self.jump, :]


def sampler_spec(plan: PlanConfig, clip_denoised: bool) -> SamplerSpec:
    """The sampler settings of a ``plan`` config section."""
    return SamplerSpec(
        method=plan.method,
        n_steps=plan.n_steps,
        eta=plan.eta,
        noise_scale=plan.noise_scale,
        clip_denoised=clip_denoised,
        corrector=plan.corrector,
        corrector_steps=plan.corrector_steps,
        corrector_step_size=plan.corrector_step_size,
        target_accept=plan.target_accept,
        leapfrog_steps=plan.leapfrog_steps,
        smc=plan.smc,
        ess_threshold=plan.ess_threshold,
        energy_temperature=plan.energy_temperature,
        loop=plan.loop,
    )


def inpainting(
    layout: Layout,
    horizon: int,
    normalizer: Normalizer,
    start: np.ndarray,
    goal: np.ndarray | None = None,
    waypoints: Sequence[tuple[int, Sequence[float]]] = (),
    goal_from: np.ndarray | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Hard conditions ``(mask [1 or Q, H, D], values [Q, H, D] normalized)``: the training-time
    endpoint conditions (the observation ``start`` [Q, O] at step 0; at the last step the goal
    observation: position ``goal`` [Q, P], every other dimension 0, Diffuser's Maze2D
    ``[x, y, 0, 0]``) plus each waypoint ``(step, position [P])`` fixing the position at
    ``step``. ``goal_from`` [Q] (with a goal) also fixes the goal position on every row from
    ``goal_from[q]`` on, a per-query arrival time; the mask then has one row per query."""
    steps = tuple(int(step) for step, _ in waypoints)
    for step in steps:
        if not -horizon <= step < horizon:
            raise ValueError(f"waypoint step {step} is outside the plan's {horizon} steps")
    points = np.asarray([point for _, point in waypoints], np.float32)
    start = np.atleast_2d(np.asarray(start, np.float32))
    goal = None if goal is None else np.asarray(goal, np.float32)
    mask, values = _inpainting(layout, horizon, steps, normalizer, start, goal, points)
    if goal_from is None or goal is None:
        return mask, values
    return _goal_from(layout, normalizer, mask, values, goal, np.asarray(goal_from, np.int32))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _inpainting(layout, horizon, steps, normalizer, start, goal, points):
    """One compiled program per layout, horizon and waypoint steps (eager ``.at`` updates
    would compile one small kernel each on the first call)."""
    goal_observation = None
    if goal is not None:
        goal_observation = jnp.zeros_like(start).at[:, list(layout.position)].set(goal)
    mask, values = endpoint_conditions(start, goal_observation, horizon, layout.action_dim)
    position = list(layout.position_columns)
    for index, step in enumerate(steps):
        mask = mask.at[0, step, position].set(True)
        values = values.at[:, step, position].set(points[index])
    return mask, jnp.where(mask, normalizer.normalize(values), 0.0)


@functools.partial(jax.jit, static_argnums=(0,))
def _goal_from(layout, normalizer, mask, values, goal, goal_from):
    """``(mask [Q, H, D], values)`` with the goal position fixed on rows ``>= goal_from [Q]``."""
    rows = jnp.arange(values.shape[1])[None, :] >= goal_from[:, None]  # [Q, H]
    columns = jnp.isin(jnp.arange(values.shape[2]), jnp.asarray(layout.position_columns))
    pinned = rows[:, :, None] & columns[None, None, :]
    placed = jnp.zeros(values.shape).at[..., list(layout.position_columns)].set(goal[:, None])
    normalized = normalizer.normalize(placed)
    return mask | pinned, jnp.where(pinned & ~mask, normalized, values)


def shift_plan(plan: np.ndarray, executed: np.ndarray | int) -> np.ndarray:
    """Previous plans ``[..., H, D]`` advanced by ``executed`` steps (one int, or ``[...]`` one
    per plan), the last row repeated to keep their length (all of it, once the whole plan has
    been executed): the warm start of the next plan."""
    horizon = plan.shape[-2]
    rows = np.minimum(np.arange(horizon) + np.asarray(executed)[..., None], horizon - 1)
    return np.take_along_axis(plan, rows[..., None], axis=-2)


def ranked_candidates(ranking: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
    """``[Q, N]`` each query's candidates from the lowest-ranked (best) to the highest, from
    ``ranking`` [Q, N] and the candidates ``trajectories`` [Q, N, H, D]. Candidates whose
    sampling diverged (a non-finite entry) or whose rank is NaN come last, so one is chosen
    only when every candidate of its query did the same."""
    diverged = ~np.isfinite(trajectories).all(axis=(2, 3)) | np.isnan(ranking)
    return np.argsort(np.where(diverged, np.inf, ranking), axis=1, kind="stable")


@jax.jit
def _score(terms: tuple[Term, ...], trajectories: jax.Array) -> tuple[jax.Array, ...]:
    """``(energies [B, K], total [B], violations [B, C])`` of final plans (noise level 0)."""
    energies = term_energies(terms, trajectories)
    return energies, energies @ term_weights(terms), violations(terms, trajectories)


class Planner:
    """Samples plans from ``denoiser`` composed with ``terms``; see the module docstring."""

    def __init__(
        self,
        denoiser: Denoiser,
        schedule: Schedule,
        normalizer: Normalizer,
        layout: Layout,
        horizon: int,
        spec: SamplerSpec = DEFAULT_SPEC,
        terms: Sequence[Term] = (),
        select: str = "energy",
        mesh: Mesh | None = None,
        jump: int = 1,
    ):
        validate_spec(spec, denoiser)
        if select not in ("energy", "value", "resample"):
            raise ValueError(f"select must be energy, value or resample; got {select!r}")
        if select == "value" and not any(term.name == "value" for term in terms):
            raise ValueError("select: value needs a value objective ({type: value, run: ...})")
        self.mesh = data_mesh() if mesh is None else mesh
        if self.mesh.size > 1:  # the networks on every device of the mesh
            denoiser, schedule, normalizer, terms = jax.device_put(
                (denoiser, schedule, normalizer, tuple(terms)),
                NamedSharding(self.mesh, PartitionSpec()),
            )
        self.denoiser = denoiser
        self.schedule = schedule
        self.normalizer = normalizer
        self.layout = layout
        self.horizon = horizon
        self.spec = spec
        self.terms = tuple(terms)
        self.row_terms = tuple(term.replace(jump=jump) for term in self.terms)
        self.select = select
        self.jump = jump

    @property
    def steps(self) -> int:
        """Environment steps of a plan: ``(H - 1) * jump + 1``."""
        return window_span(self.horizon, self.jump)

    def row_of(self, step: int) -> int:
        """The model row at environment step ``step`` (negative: from the end; a multiple of
        ``jump``)."""
        if not -self.steps <= step < self.steps:
            raise ValueError(f"waypoint step {step} is outside the plan's {self.steps} steps")
        if step % self.steps % self.jump:
            raise ValueError(f"waypoint step {step} is not on a subgoal row (every {self.jump})")
        return step % self.steps // self.jump

    def warm_started(self, level: int) -> Planner:
        """The same planner re-noising a previous plan to ``level`` instead of starting from
        noise (pass the previous plan as ``warm_start``)."""
        return Planner(
            self.denoiser, self.schedule, self.normalizer, self.layout, self.horizon,
            self.spec.replace(start_level=level), self.terms, self.select, self.mesh, self.jump,
        )  # fmt: skip

    def _placed(self, keys, mask, values, initial):
        """The sampler's inputs on the mesh: per-sample arrays split along the batch axis (or
        replicated when the device count does not divide it), a shared ``[1, H, D]`` mask
        replicated."""
        if self.mesh.size == 1:
            return keys, mask, values, initial
        divisible = values.shape[0] % self.mesh.size == 0
        split = NamedSharding(self.mesh, PartitionSpec("data" if divisible else None))
        replicated = NamedSharding(self.mesh, PartitionSpec())
        keys, values, initial = jax.device_put((keys, values, initial), split)
        mask = jax.device_put(mask, split if mask.shape[0] > 1 else replicated)
        return keys, mask, values, initial

    def plan(
        self,
        key: jax.Array,
        start: np.ndarray,
        goal: np.ndarray | None = None,
        n_candidates: int = 1,
        waypoints: Sequence[tuple[int, Sequence[float]]] = (),
        warm_start: np.ndarray | None = None,
        goal_from: np.ndarray | None = None,
    ) -> Plans:
        """Plans for ``Q`` queries: ``key`` one key or ``[Q]`` keys (one per query), ``start``
        [Q, O], ``goal`` [Q, P] or None, ``warm_start`` [Q, S, D] a previous plan (already
        shifted) when ``spec.start_level`` is set, ``goal_from`` [Q] the step from which each
        query's goal position is imposed (see :func:`inpainting`). Steps count environment
        steps (``S = self.steps``); a jumpy planner rounds ``goal_from`` up to its next row."""
        rows = [(self.row_of(int(step)), point) for step, point in waypoints]
        if goal_from is not None:
            goal_from = -(-np.asarray(goal_from) // self.jump)
        mask, values = inpainting(
            self.layout, self.horizon, self.normalizer, start, goal, rows, goal_from
        )
        queries = values.shape[0]
        query_keys = jax.random.split(key, queries) if key.shape == () else key
        if query_keys.shape != (queries,):
            raise ValueError(f"{queries} queries need one key or {queries} keys; got {key.shape}")
        keys = jax.vmap(lambda k: jax.random.split(k, n_candidates))(query_keys).reshape(-1)
        values = jnp.repeat(values, n_candidates, axis=0)
        if mask.shape[0] > 1:
            mask = jnp.repeat(mask, n_candidates, axis=0)
        initial = None
        if warm_start is not None:
            knots = np.asarray(warm_start, np.float32)[:, :: self.jump]
            normalized = self.normalizer.normalize(jnp.asarray(knots))
            initial = jnp.repeat(normalized, n_candidates, axis=0)
        keys, mask, values, initial = self._placed(keys, mask, values, initial)
        result = sample(
            keys, self.spec, self.schedule, self.denoiser, self.row_terms, self.normalizer,
            mask, values, initial, particles=n_candidates,
        )  # fmt: skip
        trajectories = interpolate_rows(self.normalizer.unnormalize(result.trajectories), self.jump)
        energies, total, violated = map(np.asarray, _score(self.terms, trajectories))
        trajectories = np.asarray(trajectories)
        names = tuple(term.name for term in self.terms)

        def per_query(array: np.ndarray) -> np.ndarray:
            return array.reshape(queries, n_candidates, *array.shape[1:])

        ranking = per_query(total)
        if self.select == "value":
            ranking = per_query(energies[:, names.index("value")])
        elif self.select == "resample":
            ranking = ranking / self.spec.energy_temperature - np.asarray(
                _gumbel(query_keys, n_candidates)
            )

        return Plans(
            trajectories=per_query(trajectories),
            energies=per_query(energies),
            total=per_query(total),
            violations=per_query(violated),
            order=ranked_candidates(ranking, per_query(trajectories)),
            acceptance=per_query(np.asarray(result.acceptance)),
            term_names=names,
            hard_names=tuple(term.name for term in hard_terms(self.terms)),
            jump=self.jump,
            ess=per_query(np.asarray(result.ess))[:, 0],
            resamples=per_query(np.asarray(result.resamples))[:, 0],
        )


GUMBEL_STREAM = 0x6B  # folded into a query's key for importance resampling's draw


@functools.partial(jax.jit, static_argnums=(1,))
def _gumbel(query_keys: jax.Array, n_candidates: int) -> np.ndarray:
    """``[Q, N]`` standard Gumbel noise: ranking by ``total / T - noise`` puts first a candidate
    drawn with probability ``∝ exp(-total / T)`` (the Gumbel-max trick), then the others in the
    order of a draw without replacement."""
    keys = jax.vmap(lambda key: jax.random.fold_in(key, GUMBEL_STREAM))(query_keys)
    return jax.vmap(lambda key: jax.random.gumbel(key, (n_candidates,)))(keys)


def appearance_steps(constraints: Sequence[Mapping]) -> tuple[int, ...]:
    """The episode steps (> 0) at which constraints with ``appears_at`` come into force; a
    negative or non-integer ``appears_at`` is refused naming the constraint."""
    steps = set()
    for index, spec in enumerate(constraints):
        step = spec.get("appears_at", 0)
        if not isinstance(step, int) or step < 0:
            raise ValueError(
                f"plan.constraints[{index}].appears_at must be a step >= 0; got {step!r}"
            )
        if step > 0:
            steps.add(step)
    return tuple(sorted(steps))


def constraints_at(constraints: Sequence[Mapping], step: int) -> list[dict]:
    """The constraint specs in force at episode step ``step`` (``appears_at``, default 0, at
    most ``step``), without that key."""
    appearance_steps(constraints)
    return [
        {key: value for key, value in spec.items() if key != "appears_at"}
        for spec in constraints
        if spec.get("appears_at", 0) <= step
    ]


def terms_from_config(
    plan: PlanConfig,
    layout: Layout,
    value_runs: Mapping[str, TrainedRun] | None = None,
    step: int = 0,
) -> list[Term]:
    """The constraint terms in force at episode step ``step`` and the objective terms of a
    ``plan`` section. A ``value`` objective names a value run directory (``run: DIR``);
    ``value_runs`` maps each such name to its loaded run."""
    value_runs = value_runs or {}

    def value(layout: Layout, run: str, **guidance) -> Term:
        if run not in value_runs:
            raise ValueError(f"value run {run!r} is not loaded")
        loaded = value_runs[run]
        return value_term(loaded.value_apply(), loaded.params, loaded.normalizer, **guidance)

    objective_types = {**OBJECTIVE_TYPES, "value": value}
    return [
        *terms_from_specs(
            constraints_at(plan.constraints, step), layout, CONSTRAINT_TYPES, "plan.constraints"
        ),
        *terms_from_specs(plan.objectives, layout, objective_types, "plan.objectives"),
    ]
