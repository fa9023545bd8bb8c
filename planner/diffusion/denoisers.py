"""The model side of a sampler: a noise prediction and, for energy models, a scalar energy.

A :class:`Denoiser` works in the normalized space of its training data:
``noise(x [B, H, D], t [B]) -> ε̂ [B, H, D]`` and, when energy-parameterized,
``energy(x, t) -> [B]`` with ``grad_x energy = noise``. At level ``t`` the model's density is
``p_t(x) ∝ exp(-energy(x, t) / σ_t)`` with ``σ_t = sqrt(1 - ᾱ_t)``, so its score is ``-ε̂ / σ_t``.

Several trained models compose into one denoiser:

- :func:`combine`: ``ε = Σ w_i ε_i``, the product ``Π p_i^{w_i}`` of the models' distributions
  (weight 1 on each model is their product; other weights temper it); :func:`negate` and
  :func:`classifier_free` are combinations with one negative weight. Score and energy models
  alike.
- :func:`mix`: ``E = -σ_t logsumexp(-E_i / σ_t)``, energy models only (a score gives no density
  at all). It is a mixture of the models' distributions only up to one constant per model and
  level: a denoising-trained energy is defined up to an additive constant, which here becomes
  an unknown weight ``exp(-c_i(t) / σ_t)`` on component ``i``. Not calibrated: do not read it as
  the exact equal-weight mixture.

One model also composes with itself over time: :func:`overlapping_windows` plans trajectories
longer than the windows it was trained on, as a product of overlapping window factors.

Composed models must share the transition layout and the noise schedule (same number of levels);
the sampler also uses one normalizer for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from planner.diffusion.schedule import Schedule

NoiseFn = Callable[[Any, jax.Array, jax.Array], jax.Array]
ModelEnergyFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


class Denoiser(struct.PyTreeNode):
    """``params`` (array leaves) plus static functions of ``(params, x, t)``."""

    params: Any
    noise_fn: NoiseFn = struct.field(pytree_node=False)
    energy_fn: ModelEnergyFn | None = struct.field(pytree_node=False, default=None)

    @property
    def has_energy(self) -> bool:
        return self.energy_fn is not None

    def noise(self, x: jax.Array, t: jax.Array) -> jax.Array:
        return self.noise_fn(self.params, x, t)

    def energy(self, x: jax.Array, t: jax.Array) -> jax.Array:
        if self.energy_fn is None:
            raise ValueError("this denoiser is score-parameterized; it has no energy")
        return self.energy_fn(self.params, x, t)


def in_precision(network: NoiseFn, dtype: Any) -> NoiseFn:
    """``network(params, x, t)`` computed in ``dtype`` (e.g. ``jnp.bfloat16``: mixed precision
    for accelerators): floating parameters and ``x`` cast to it, the result cast back to ``x``'s
    dtype, so samplers and guidance keep working in float32."""

    def low_precision(params: Any, x: jax.Array, t: jax.Array, *condition) -> jax.Array:
        def cast(leaf: jax.Array) -> jax.Array:
            return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

        return network(jax.tree.map(cast, params), x.astype(dtype), t, *condition).astype(x.dtype)

    return low_precision


def network_denoiser(
    params: Any,
    predict: NoiseFn,
    schedule: Schedule,
    predict_epsilon: bool,
    energy: ModelEnergyFn | None = None,
) -> Denoiser:
    """A trained network as a :class:`Denoiser`. ``predict(params, x, t)`` is the network's
    prediction: the noise if ``predict_epsilon``, else the clean trajectory, converted to the
    noise it implies (extra arguments, such as an attribute, are passed through). ``energy`` is
    the scalar energy of energy-parameterized networks."""
    if predict_epsilon:
        return Denoiser(params, predict, energy)
    root_alpha = schedule.sqrt_alphas_cumprod
    root_one_minus = schedule.sqrt_one_minus_alphas_cumprod

    def noise_from_clean(params: Any, x: jax.Array, t: jax.Array, *condition) -> jax.Array:
        clean = predict(params, x, t, *condition)
        return (x - root_alpha[t][:, None, None] * clean) / root_one_minus[t][:, None, None]

    return Denoiser(params, noise_from_clean, None)


def combine(denoisers: Sequence[Denoiser], weights: Sequence[float]) -> Denoiser:
    """``ε = Σ w_i ε_i`` (and ``E = Σ w_i E_i`` when every model has an energy): the product
    ``Π p_i^{w_i}``, so weight 1 on every model is the product of their distributions."""
    if len(denoisers) != len(weights) or not denoisers:
        raise ValueError(f"need one weight per model; got {len(denoisers)} and {len(weights)}")
    parts = tuple(
        (d.noise_fn, d.energy_fn, float(w)) for d, w in zip(denoisers, weights, strict=True)
    )

    def noise(params: tuple, x: jax.Array, t: jax.Array) -> jax.Array:
        return sum(w * fn(p, x, t) for (fn, _, w), p in zip(parts, params, strict=True))

    def energy(params: tuple, x: jax.Array, t: jax.Array) -> jax.Array:
        return sum(w * fn(p, x, t) for (_, fn, w), p in zip(parts, params, strict=True))

    all_energy = all(d.has_energy for d in denoisers)
    return Denoiser(tuple(d.params for d in denoisers), noise, energy if all_energy else None)


def negate(positive: Denoiser, negative: Denoiser, strength: float) -> Denoiser:
    """``(1 + λ) ε_1 - λ ε_2``: sample like ``positive`` but away from ``negative``."""
    return combine([positive, negative], [1.0 + strength, -strength])


def classifier_free(conditional: Denoiser, unconditional: Denoiser, guidance: float) -> Denoiser:
    """Classifier-free guidance, ``ε_u + (1 + w)(ε_c - ε_u)``: ``w = 0`` is the conditional
    model alone; larger ``w`` follows the condition more closely."""
    return negate(conditional, unconditional, guidance)


def composed_conditions(
    unconditional: Denoiser,
    required: Sequence[Denoiser],
    excluded: Sequence[Denoiser],
    guidance: float,
) -> Denoiser:
    """Classifier-free guidance toward every ``required`` condition and away from every
    ``excluded`` one: ``ε = ε_∅ + w Σ_r (ε_r - ε_∅) - w Σ_e (ε_e - ε_∅)`` (the product of the
    conditionals over the unconditional, with the excluded ones divided out)."""
    weight_free = 1.0 - guidance * len(required) + guidance * len(excluded)
    weights = [weight_free, *[guidance] * len(required), *[-guidance] * len(excluded)]
    return combine([unconditional, *required, *excluded], weights)


def mix(denoisers: Sequence[Denoiser], schedule: Schedule) -> Denoiser:
    """``E = -σ_t logsumexp(-E_i / σ_t)`` over energy models: a mixture whose component weights
    carry each model's unknown per-level constant (see the module docstring)."""
    if not denoisers or not all(d.has_energy for d in denoisers):
        raise ValueError(
            "a mixture needs energy-parameterized models (diffusion.parameterization: energy); "
            "score models support only weighted sums and negation"
        )
    energies = tuple(d.energy_fn for d in denoisers)
    sigma = schedule.sqrt_one_minus_alphas_cumprod

    def energy(params: tuple, x: jax.Array, t: jax.Array) -> jax.Array:
        stacked = jnp.stack([fn(p, x, t) for fn, p in zip(energies, params, strict=True)])
        return -sigma[t] * jax.nn.logsumexp(-stacked / sigma[t], axis=0)

    def noise(params: tuple, x: jax.Array, t: jax.Array) -> jax.Array:
        return jax.grad(lambda y: energy(params, y, t).sum())(x)

    return Denoiser(tuple(d.params for d in denoisers), noise, energy)


def window_starts(length: int, window: int, stride: int) -> tuple[int, ...]:
    """First steps of the windows ``[s, s + window)`` that tile ``length`` steps ``stride``
    apart; ``ValueError`` unless they tile it exactly and consecutive windows overlap."""
    if not 0 < stride < window:
        raise ValueError(f"the window stride must be in 1..{window - 1}; got {stride}")
    if length < window or (length - window) % stride:
        raise ValueError(
            f"a plan of {length} steps is not {window}-step windows {stride} steps apart; use "
            f"{window} + k * {stride} steps"
        )
    return tuple(range(0, length - window + 1, stride))


def overlapping_windows(
    denoiser: Denoiser,
    window: int,
    stride: int,
    schedule: Schedule | None = None,
    action_dim: int = 0,
    condition_start: bool = False,
    condition_goal: bool = False,
) -> Denoiser:
    """``denoiser``, trained on ``window``-step trajectories, as a model of longer ones.

    The long trajectory's density is the product of the model on overlapping windows ``W_k``
    divided by the model on their overlaps ``O_k = W_k ∩ W_{k+1}`` (the factor graph of a chain;
    exact at noise level 0 when the data are Markov over the overlap), so
    ``ε(x) = Σ_k ε(x[W_k]) - Σ_k ε(x[O_k])`` placed at each window's steps, and the same for
    the energy. The overlaps (``window - stride`` steps) are evaluated by the same
    convolutional network. ``x`` [B, L, D] with ``L = window + k * stride``.

    A model trained with its first (``condition_start``) and / or last (``condition_goal``)
    observation clean is given those rows clean in every window and overlap, as in training
    (transitions are ``[actions (action_dim), observations]``): the long plan's own ends as the
    sampler imposes them, interior ones as the model's current estimate of the clean state
    there (``x̂₀ = (x - σ_t ε) / √ᾱ_t`` of the neighbouring window, ``schedule`` needed). With a
    clean first row a window and the overlap that starts there divide into the conditional of the
    window's new steps given the overlap, so the chain stays a product of conditionals. The
    estimates come from one sweep through the windows per conditioned end, start estimates
    forward from the plan's start and goal estimates backward from its goal (the forward sweep
    reads not-yet-estimated interior goal rows as they are); a conditioned row gets no
    contribution from the factors that take it as given. Costs about 2x (one end conditioned)
    or 3x (both) the network evaluations of the unconditioned composition.
    """
    if (condition_start or condition_goal) and schedule is None:
        raise ValueError("conditioned windows need the noise schedule to estimate clean rows")

    def factors(length: int) -> tuple[tuple[float, tuple[int, ...], int], ...]:
        """``(sign, first steps, size)`` of the window factors and of the overlap divisors."""
        starts = window_starts(length, window, stride)
        overlaps = tuple(s + stride for s in starts[:-1])
        return (1.0, starts, window), (-1.0, overlaps, window - stride)

    def given_rows(first: int, size: int) -> tuple[int, ...]:
        """Steps of the slice ``[first, first + size)`` the model takes as clean."""
        return (first,) * condition_start + (first + size - 1,) * condition_goal

    def conditioned(x: jax.Array, clean: dict[int, jax.Array], first: int, size: int):
        """``(slice [B, size, D], free [1, size, D])``: the slice with its given rows' observations
        set to ``clean[step]``, and where its prediction counts."""
        part = x[:, first : first + size]
        free = jnp.ones((1, size, x.shape[2]), bool)
        for step in given_rows(first, size):
            part = part.at[:, step - first, action_dim:].set(clean[step])
            free = free.at[:, step - first, action_dim:].set(False)
        return part, free

    def clean_rows(params: Any, x: jax.Array, t: jax.Array) -> dict[int, jax.Array]:
        """``{step: [B, O]}`` clean observations of every given row of every window."""
        starts = window_starts(x.shape[1], window, stride)
        ends = [first + window - 1 for first in starts]
        # The plan's own ends as imposed; interior goal rows as they are until estimated.
        clean = {step: x[:, step, action_dim:] for step in (0, *ends)}
        root_alpha = schedule.sqrt_alphas_cumprod[t][:, None, None]
        sigma = schedule.sqrt_one_minus_alphas_cumprod[t][:, None, None]

        def estimate(k: int, step: int) -> jax.Array:
            part, _ = conditioned(x, clean, starts[k], window)
            noise = denoiser.noise_fn(params, part, t)
            return ((part - sigma * noise) / root_alpha)[:, step - starts[k], action_dim:]

        if condition_start:
            for k in range(len(starts) - 1):
                clean[starts[k + 1]] = estimate(k, starts[k + 1])
        if condition_goal:
            for k in reversed(range(1, len(starts))):
                clean[ends[k - 1]] = estimate(k, ends[k - 1])
        return jax.lax.stop_gradient(clean)

    def slices(params: Any, x: jax.Array, t: jax.Array):
        """``(sign, first, size, inputs [n, B, size, D], free [n, 1, size, D])`` per factor kind:
        every slice of one kind, conditioned, stacked for one network call."""
        clean = clean_rows(params, x, t) if condition_start or condition_goal else {}
        for sign, starts, size in factors(x.shape[1]):
            parts = [conditioned(x, clean, first, size) for first in starts]
            yield (
                sign,
                starts,
                size,
                jnp.stack([p for p, _ in parts]),
                jnp.stack([f for _, f in parts]),
            )

    def batched(fn: Callable, params: Any, inputs: jax.Array, t: jax.Array) -> jax.Array:
        """``fn`` on ``inputs`` [n, B, ...] in one call: ``[n, B, ...]``."""
        n, batch = inputs.shape[:2]
        out = fn(params, inputs.reshape(n * batch, *inputs.shape[2:]), jnp.tile(t, n))
        return out.reshape(n, batch, *out.shape[1:])

    def noise(params: Any, x: jax.Array, t: jax.Array) -> jax.Array:
        total = jnp.zeros_like(x)
        for sign, starts, size, inputs, free in slices(params, x, t):
            outputs = batched(denoiser.noise_fn, params, inputs, t) * free
            for first, output in zip(starts, outputs, strict=True):
                total = total.at[:, first : first + size].add(sign * output)
        return total

    def energy(params: Any, x: jax.Array, t: jax.Array) -> jax.Array:
        return sum(
            sign * batched(denoiser.energy_fn, params, inputs, t).sum(axis=0)
            for sign, _, _, inputs, _ in slices(params, x, t)
        )

    return Denoiser(denoiser.params, noise, energy if denoiser.has_energy else None)
