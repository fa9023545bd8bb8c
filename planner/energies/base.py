"""The energy API: a term is a scalar function of one trajectory in environment units.

A :class:`Term` wraps ``fn(trajectory [H, C], t) -> scalar`` (or ``fn(trajectory, t, data)`` when
the term carries arrays such as an obstacle's centre or a value network's parameters) with its
weight and its guidance schedule. ``C`` is the number of columns the term reads: all ``D``
columns of ``[action, observation]`` by default, or the ``columns`` it names (positions,
velocities, actions). Low energy is good. The library batches terms with ``vmap`` and
differentiates them with ``grad``; a user never writes either.

Terms are pytrees: ``data``, ``weight``, ``scale`` and ``t_stopgrad`` are array leaves, so a new
obstacle position or weight reaches a jitted sampler without recompiling; the function, the
columns and the number of guidance steps are static.

Composition operators act on any scalar energy function ``e(x, t) -> scalar``: a weighted sum
(a product of distributions, tempered by the weights), a mixture (``-T logsumexp(-E_i / T)``) and
a negation (``(1 + λ) E1 - λ E2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from planner.data.normalize import Normalizer
from planner.data.windows import interpolate_rows

EnergyFn = Callable[..., jax.Array]


class Term(struct.PyTreeNode):
    """One weighted energy term with its guidance schedule (the reference's guide settings).

    ``scale``: guidance step size, ``x <- x - scale * weight * grad E`` per guidance step.
    ``n_guide_steps``: gradient steps per noise level. ``t_stopgrad``: no guidance at noise levels
    below it. ``scale_grad_by_std``: multiply the step by the level's posterior variance.
    ``on``: ``noisy`` guides the current sample ``x_t`` before the model is evaluated (Diffuser's
    value guidance); ``denoised`` guides the model's clean estimate ``x̂0`` after it, which keeps
    geometric terms meaningful at high noise. ``hard``: a constraint whose violation is reported.
    ``violation(trajectory [H, C], data) -> scalar``, zero when the constraint holds.
    ``jump``: the trajectories' rows are this many steps apart (a jumpy model's subgoals); the
    term reads their linear interpolation, one row per step, so a constraint holds between rows
    too.
    """

    data: Any
    weight: jax.Array
    scale: jax.Array
    t_stopgrad: jax.Array
    fn: EnergyFn = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)
    columns: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
    n_guide_steps: int = struct.field(pytree_node=False, default=1)
    scale_grad_by_std: bool = struct.field(pytree_node=False, default=False)
    on: Literal["noisy", "denoised"] = struct.field(pytree_node=False, default="denoised")
    violation: EnergyFn | None = struct.field(pytree_node=False, default=None)
    jump: int = struct.field(pytree_node=False, default=1)

    def select(self, trajectory: jax.Array) -> jax.Array:
        """The columns ``[S, C]`` this term reads from a trajectory ``[H, D]`` (``S`` steps:
        ``H`` unless ``jump > 1``)."""
        steps = interpolate_rows(trajectory, self.jump)
        return steps if self.columns is None else steps[:, self.columns]

    def energy(self, trajectory: jax.Array, t: jax.Array) -> jax.Array:
        """The unweighted energy of one trajectory ``[H, D]`` in environment units."""
        selected = self.select(trajectory)
        return self.fn(selected, t) if self.data is None else self.fn(selected, t, self.data)

    def violation_of(self, trajectory: jax.Array) -> jax.Array:
        """How far one trajectory ``[H, D]`` is from satisfying this hard constraint (0: holds)."""
        return self.violation(self.select(trajectory), self.data)


def term(
    fn: EnergyFn,
    name: str,
    *,
    data: Any = None,
    weight: float = 1.0,
    scale: float = 1.0,
    n_guide_steps: int = 1,
    t_stopgrad: int = 0,
    scale_grad_by_std: bool = False,
    on: Literal["noisy", "denoised"] = "denoised",
    columns: Sequence[int] | None = None,
    violation: EnergyFn | None = None,
) -> Term:
    """A :class:`Term` from a plain function of a JAX array (see the module docstring)."""
    if on not in ("noisy", "denoised"):
        raise ValueError(f"term {name!r}: on must be noisy or denoised; got {on!r}")
    if n_guide_steps < 0:
        raise ValueError(f"term {name!r}: n_guide_steps must be >= 0; got {n_guide_steps}")
    return Term(
        data=data,
        weight=jnp.float32(weight),
        scale=jnp.float32(scale),
        t_stopgrad=jnp.int32(t_stopgrad),
        fn=fn,
        name=name,
        columns=None if columns is None else tuple(int(c) for c in columns),
        n_guide_steps=int(n_guide_steps),
        scale_grad_by_std=bool(scale_grad_by_std),
        on=on,
        violation=violation,
    )


# --- evaluating terms on batches --------------------------------------------------------------


def term_energies(
    terms: Sequence[Term], trajectories: jax.Array, t: jax.Array | int = 0
) -> jax.Array:
    """Unweighted energies ``[B, K]`` of ``K`` terms on ``trajectories`` [B, H, D] (env units)."""
    if not terms:
        return jnp.zeros((trajectories.shape[0], 0))
    t = jnp.asarray(t)
    return jnp.stack(
        [jax.vmap(lambda x, term=term: term.energy(x, t))(trajectories) for term in terms], axis=1
    )


SATISFIED = 1e-3  # a hard term holds when its violation is at most this (metres, m/s)


def violations(terms: Sequence[Term], trajectories: jax.Array) -> jax.Array:
    """``[B, C]`` violation of each hard term (in the order of ``hard_terms``) per trajectory."""
    hard = hard_terms(terms)
    if not hard:
        return jnp.zeros((trajectories.shape[0], 0))
    return jnp.stack([jax.vmap(term.violation_of)(trajectories) for term in hard], axis=1)


def hard_terms(terms: Sequence[Term]) -> list[Term]:
    return [term for term in terms if term.violation is not None]


def term_weights(terms: Sequence[Term]) -> jax.Array:
    """``[K]`` the terms' weights: ``term_energies(...) @ term_weights(...)`` is the total."""
    return jnp.stack([term.weight for term in terms]) if terms else jnp.zeros((0,))


def guidance_gradient(
    terms: Sequence[Term],
    x: jax.Array,
    t: jax.Array,
    step: int,
    normalizer: Normalizer,
    variance: jax.Array,
) -> jax.Array:
    """The guidance update direction ``[B, H, D]`` in normalized space at guidance step ``step``
    of noise level ``t``: ``sum_k c_k grad_x E_k(unnormalize(x))`` with
    ``c_k = scale_k * weight_k (* variance)``, zero for terms whose schedule is off."""

    def weighted(x_one: jax.Array) -> jax.Array:
        trajectory = normalizer.unnormalize(x_one)
        total = jnp.float32(0.0)
        for term in terms:
            active = (step < term.n_guide_steps) & (t >= term.t_stopgrad)
            coefficient = term.scale * term.weight * (variance if term.scale_grad_by_std else 1.0)
            total = total + jnp.where(active, coefficient, 0.0) * term.energy(trajectory, t)
        return total

    return jax.vmap(jax.grad(weighted))(x)


# --- composition operators on scalar energies -------------------------------------------------


def weighted_sum(energies: Sequence[EnergyFn], weights: Sequence[float]) -> EnergyFn:
    """``sum_i w_i E_i``: the product of the distributions ``exp(-E_i)^{w_i}``."""
    if len(energies) != len(weights):
        raise ValueError(f"{len(energies)} energies but {len(weights)} weights")

    def combined(*args):
        return sum(w * e(*args) for e, w in zip(energies, weights, strict=True))

    return combined


def mixture(energies: Sequence[EnergyFn], temperature: float = 1.0) -> EnergyFn:
    """``-T logsumexp(-E_i / T)``: an equal-weight mixture of ``exp(-E_i / T)`` when every
    ``E_i`` includes its own log-normalizer. Energies known only up to an additive constant
    (denoising-trained energy models among them) give a mixture whose weights are off by
    ``exp(-c_i / T)``."""

    def combined(*args):
        stacked = jnp.stack([e(*args) for e in energies])
        return -temperature * jax.nn.logsumexp(-stacked / temperature, axis=0)

    return combined


def negation(positive: EnergyFn, negative: EnergyFn, strength: float) -> EnergyFn:
    """``(1 + λ) E1 - λ E2``: ``exp(-E1)`` with the mass of ``exp(-E2)`` pushed away."""
    return weighted_sum([positive, negative], [1.0 + strength, -strength])
