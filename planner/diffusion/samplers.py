"""Jitted guided samplers: every noise level's work (guidance, model call, update, corrector) in
one jitted step, iterated by ``lax.scan`` in one dispatch or by a Python loop (see ``sample``).

``sample(keys, spec, schedule, denoiser, terms, normalizer, mask, values, warm_start=None)``
draws ``B`` trajectories ``[B, H, D]`` (normalized) from the denoiser composed with energy terms,
trajectory ``b`` from its own key ``keys[b]``: a sample does not depend on what else is in the
batch, so planning 100 episodes at once gives the plans of planning them one by one. Only SMC
couples samples, and only the ``particles`` consecutive ones of one query.

- ``ddpm``: ancestral sampling with Diffuser's semantics: guidance steps on ``x_t`` before the
  model is evaluated, the clean estimate clipped to [-1, 1], the posterior mean plus noise (none at
  the last step), and the hard conditions re-imposed after every step.
- ``ddim``: ``n_steps`` evenly spaced levels with stochasticity ``eta`` (1 with every level is
  DDPM in distribution).
- correctors (``ula``, ``mala``, ``hmc``): ``corrector_steps`` MCMC steps at every intermediate
  level on ``log p_t(x) - Σ w_k E_k(x)``, each term on its guidance schedule. The step size is
  ``corrector_step_size · σ_t²``; MALA and Metropolis-adjusted HMC adapt it toward
  ``target_accept``. Metropolis tests need the model's energy, so score models get ULA and
  unadjusted HMC only.
- ``smc``: sequential Monte Carlo over each query's ``particles`` (Feynman–Kac steering). At
  every level the particles are reweighted by the change of their tempered composed energy
  ``λ_t Σ w_k E_k / T`` (``λ_t = ᾱ_t``: nothing at pure noise, all of it at the clean end; ``T``
  = ``energy_temperature``) and resampled (systematic, within the query) when the effective
  sample size falls below ``ess_threshold`` of the particles. The weights telescope, so with
  an unguided proposal the samples target ``p_model(τ) exp(-Σ w_k E_k(τ) / T)``; guidance
  steps, when also on, make a better proposal whose density ratio is not corrected for. The
  same total energy ranks the candidates afterwards.
- warm start: a previous plan is re-noised to ``start_level`` and denoised from there.
- ``noise_scale`` is a sampling temperature: it multiplies the initial noise (or the warm start's
  re-noising) and every step's noise; below 1 draws nearer the model's mode, 0 with deterministic
  DDIM gives one plan per condition.

Energy terms see trajectories in environment units (``normalizer.unnormalize``); ``noisy`` terms
guide ``x_t`` before the model call and ``denoised`` terms guide the clean estimate after it. Shapes
and ``spec`` are static, everything else is an argument: new goals, obstacle positions, weights or
parameters reuse the compiled sampler.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from planner.data.normalize import Normalizer
from planner.diffusion.conditioning import impose
from planner.diffusion.denoisers import Denoiser
from planner.diffusion.schedule import Schedule, add_noise, start_from_noise
from planner.energies.base import Term, guidance_gradient, term_energies, term_weights

MIN_VARIANCE = 1e-20  # Diffuser clips the log posterior variance at this value
PYTHON_LOOP_MIN_BATCH = 32  # ``loop: auto`` on CPU: one dispatch per level from this batch on
RESAMPLE_STREAM = 0x5C  # folded into a level's key for SMC resampling (leaves the other draws be)
HUGE_ENERGY = 1e30  # a non-finite composed energy counts as this: its particle gets no weight


def split_keys(keys: jax.Array, n: int) -> jax.Array:
    """``[B]`` per-sample keys → ``[n, B]``: ``n`` fresh keys for every sample."""
    return jnp.swapaxes(jax.vmap(lambda key: jax.random.split(key, n))(keys), 0, 1)


def _normal(keys: jax.Array, like: jax.Array) -> jax.Array:
    """Standard normals shaped like ``like`` [B, ...], row ``b`` drawn from ``keys[b]``."""
    return jax.vmap(lambda key: jax.random.normal(key, like.shape[1:]))(keys)


@dataclass(frozen=True)
class SamplerSpec:
    """Static sampler settings (hashable: a change compiles a new sampler)."""

    method: Literal["ddpm", "ddim"] = "ddpm"
    n_steps: int | None = None  # DDIM levels; None = every level
    eta: float = 0.0  # DDIM stochasticity
    noise_scale: float = 1.0  # temperature: scales the initial and per-step noise (1 = reference)
    clip_denoised: bool = True
    corrector: Literal["none", "ula", "mala", "hmc"] = "none"
    corrector_steps: int = 0
    corrector_step_size: float = 0.1  # fraction of the level's noise variance
    target_accept: float = 0.57
    leapfrog_steps: int = 3
    smc: bool = False  # reweight and resample each query's particles at every level
    ess_threshold: float = 0.5  # SMC resamples when ESS < this fraction of the particles
    energy_temperature: float = 1.0  # T in the SMC target p_model · exp(-E / T)
    start_level: int | None = None  # warm start level; None = start from pure noise
    loop: Literal["auto", "scan", "python"] = "auto"  # how levels are iterated; see ``sample``

    def replace(self, **changes) -> SamplerSpec:
        return dataclasses.replace(self, **changes)


class SampleResult(struct.PyTreeNode):
    """``trajectories`` [B, H, D] normalized; ``acceptance`` [B] mean Metropolis acceptance of the
    corrector (1 where nothing was tested); ``ess`` [B] the SMC effective sample size as a
    fraction of the particles, averaged over levels (1 without SMC); ``resamples`` [B] levels
    at which the sample's query resampled; ``evaluations`` network calls per trajectory."""

    trajectories: jax.Array
    acceptance: jax.Array
    ess: jax.Array
    resamples: jax.Array
    evaluations: int = struct.field(pytree_node=False)


def sampling_levels(spec: SamplerSpec, n_levels: int) -> np.ndarray:
    """The descending noise levels the sampler visits, from the start level down to 0."""
    start = n_levels - 1 if spec.start_level is None else spec.start_level
    if not 0 <= start < n_levels:
        raise ValueError(f"start_level must be in [0, {n_levels - 1}]; got {start}")
    if spec.method == "ddpm":
        return np.arange(start, -1, -1, dtype=np.int32)
    count = start + 1 if spec.n_steps is None else min(spec.n_steps, start + 1)
    return np.unique(np.round(np.linspace(0, start, count)).astype(np.int32))[::-1]


def network_evaluations(spec: SamplerSpec, n_levels: int) -> int:
    """Denoiser calls per trajectory (the compute that samplers are compared at). A corrector
    step evaluates the target at its start, plus once per leapfrog step (HMC) or once at the
    proposal for MALA's Metropolis test."""
    levels = len(sampling_levels(spec, n_levels))
    per_corrector_step = {"hmc": 1 + spec.leapfrog_steps, "mala": 2}.get(spec.corrector, 1)
    corrected = (levels - 1) * spec.corrector_steps * per_corrector_step
    return levels + (corrected if spec.corrector != "none" else 0)


def validate_spec(spec: SamplerSpec, denoiser: Denoiser) -> None:
    """Refuse settings the denoiser cannot support, before anything is compiled."""
    if spec.method not in ("ddpm", "ddim"):
        raise ValueError(f"sampler method must be ddpm or ddim; got {spec.method!r}")
    if spec.loop not in ("auto", "scan", "python"):
        raise ValueError(f"sampler loop must be auto, scan or python; got {spec.loop!r}")
    if spec.corrector not in ("none", "ula", "mala", "hmc"):
        raise ValueError(f"corrector must be none, ula, mala or hmc; got {spec.corrector!r}")
    if not 0 <= spec.ess_threshold <= 1:
        raise ValueError(f"ess_threshold must be in [0, 1]; got {spec.ess_threshold}")
    if spec.energy_temperature <= 0:
        raise ValueError(f"energy_temperature must be positive; got {spec.energy_temperature}")
    if spec.corrector == "mala" and not denoiser.has_energy:
        raise ValueError(
            "MALA's Metropolis test needs an energy-parameterized model "
            "(diffusion.parameterization: energy); use ula or hmc with a score model"
        )


# --- schedule coefficients at arbitrary levels ------------------------------------------------


def _alpha_bar(schedule: Schedule, t: jax.Array) -> jax.Array:
    """``ᾱ_t`` with ``ᾱ_{-1} = 1`` (the clean data)."""
    return jnp.where(t >= 0, schedule.alphas_cumprod[jnp.maximum(t, 0)], 1.0)


def _posterior_variance(schedule: Schedule, t: jax.Array) -> jax.Array:
    """Variance of ``q(x_{t-1} | x_t, x_0)``, Diffuser's ``posterior_variance``."""
    return schedule.betas[t] * (1.0 - _alpha_bar(schedule, t - 1)) / (1.0 - _alpha_bar(schedule, t))


# --- one reverse step -------------------------------------------------------------------------


def _guide(
    x: jax.Array,
    terms: Sequence[Term],
    t: jax.Array,
    normalizer: Normalizer,
    variance: jax.Array,
    mask: jax.Array,
    values: jax.Array,
) -> jax.Array:
    """Gradient steps ``x <- x - c_k grad E_k`` for the terms' guidance schedules, conditions
    re-imposed after each (Diffuser's ``n_step_guided_p_sample``)."""
    for step in range(max((term.n_guide_steps for term in terms), default=0)):
        x = x - guidance_gradient(terms, x, t, step, normalizer, variance)
        x = impose(x, mask, values)
    return x


def _clean_estimate(
    spec: SamplerSpec,
    schedule: Schedule,
    denoiser: Denoiser,
    terms: Sequence[Term],
    normalizer: Normalizer,
    x: jax.Array,
    t: jax.Array,
    mask: jax.Array,
    values: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``(x_t, x̂0)`` after noisy guidance, the model call and denoised guidance."""
    batch = jnp.full((x.shape[0],), t)
    variance = _posterior_variance(schedule, t)
    noisy = [term for term in terms if term.on == "noisy"]
    denoised = [term for term in terms if term.on == "denoised"]
    x = _guide(x, noisy, t, normalizer, variance, mask, values)
    clean = start_from_noise(schedule, x, batch, denoiser.noise(x, batch))
    if spec.clip_denoised:
        clean = jnp.clip(clean, -1.0, 1.0)
    clean = _guide(clean, denoised, t, normalizer, variance, mask, values)
    return x, clean


def _ddpm_update(
    spec: SamplerSpec, schedule: Schedule, x: jax.Array, clean: jax.Array, t: jax.Array, keys
) -> jax.Array:
    alpha_bar, alpha_bar_prev = _alpha_bar(schedule, t), _alpha_bar(schedule, t - 1)
    beta = schedule.betas[t]
    mean = (
        beta * jnp.sqrt(alpha_bar_prev) * clean + (1 - alpha_bar_prev) * jnp.sqrt(1 - beta) * x
    ) / (1 - alpha_bar)
    std = jnp.sqrt(jnp.maximum(_posterior_variance(schedule, t), MIN_VARIANCE))
    noise = _normal(keys, x) * spec.noise_scale
    return mean + jnp.where(t > 0, std, 0.0) * noise


def _ddim_update(
    spec: SamplerSpec,
    schedule: Schedule,
    x: jax.Array,
    clean: jax.Array,
    t: jax.Array,
    t_prev: jax.Array,
    keys,
) -> jax.Array:
    alpha_bar, alpha_bar_prev = _alpha_bar(schedule, t), _alpha_bar(schedule, t_prev)
    noise_estimate = (x - jnp.sqrt(alpha_bar) * clean) / jnp.sqrt(1 - alpha_bar)
    sigma = spec.eta * jnp.sqrt(
        (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    )
    direction = jnp.sqrt(jnp.maximum(1 - alpha_bar_prev - sigma**2, 0.0)) * noise_estimate
    noise = _normal(keys, x) * spec.noise_scale
    return jnp.sqrt(alpha_bar_prev) * clean + direction + sigma * noise


# --- MCMC correctors --------------------------------------------------------------------------


def _corrector_target(
    denoiser: Denoiser, terms: Sequence[Term], normalizer: Normalizer, schedule: Schedule, t
):
    """``log_density_and_score(x) -> (log π [B] or None, ∇ log π [B, H, D])`` of the target
    ``π(x) ∝ p_t(x) exp(-Σ w_k E_k)``; the log density exists only for energy models.

    The terms follow their guidance schedule: a term with no guidance steps (select-only) or
    below its ``t_stopgrad`` is left out; a ``noisy`` term sees the sample ``x`` and a
    ``denoised`` term the clean estimate ``x̂0 = (x - σ_t ε̂(x)) / √ᾱ_t``. A denoised term's
    gradient is taken as ``√ᾱ_t ∇E(x̂0)``, exact for unit-variance data (``∂x̂0/∂x = √ᾱ_t`` then),
    with no backward pass through the network; Metropolis tests use the exact values.
    """
    sigma = jnp.sqrt(1.0 - _alpha_bar(schedule, t))
    root_alpha_bar = jnp.sqrt(_alpha_bar(schedule, t))

    def weighted_sum(on: str):
        chosen = [term for term in terms if term.n_guide_steps > 0 and term.on == on]

        def energy(x_one: jax.Array) -> jax.Array:
            trajectory = normalizer.unnormalize(x_one)
            total = jnp.float32(0.0)
            for term in chosen:
                weight = jnp.where(t >= term.t_stopgrad, term.weight, 0.0)
                total = total + weight * term.energy(trajectory, t)
            return total

        return jax.vmap(energy), jax.vmap(jax.grad(energy))

    on_sample, sample_gradient = weighted_sum("noisy")
    on_clean, clean_gradient = weighted_sum("denoised")

    def terms_value_and_gradient(x: jax.Array, noise: jax.Array):
        clean = (x - sigma * noise) / root_alpha_bar
        value = on_sample(x) + on_clean(clean)
        return value, sample_gradient(x) + root_alpha_bar * clean_gradient(clean)

    def levels(x: jax.Array) -> jax.Array:
        return jnp.full((x.shape[0],), t)

    if not denoiser.has_energy:

        def score_only(x: jax.Array) -> tuple[None, jax.Array]:
            noise = denoiser.noise(x, levels(x))
            _, gradient = terms_value_and_gradient(x, noise)
            return None, -noise / sigma - gradient

        return score_only

    def with_score(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        model_energy, pullback = jax.vjp(lambda x: denoiser.energy(x, levels(x)), x)
        noise = pullback(jnp.ones_like(model_energy))[0]
        value, gradient = terms_value_and_gradient(x, noise)
        return -model_energy / sigma - value, -noise / sigma - gradient

    return with_score


def _metropolis(keys, log_ratio: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(accepted [B] bool, acceptance probability [B])`` for log acceptance ratios [B]."""
    probability = jnp.exp(jnp.minimum(log_ratio, 0.0))
    uniform = jax.vmap(lambda key: jax.random.uniform(key))(keys)
    return uniform < probability, probability


def _per_sample(values: jax.Array) -> jax.Array:
    return values[:, None, None]


def _correct(
    spec: SamplerSpec,
    denoiser: Denoiser,
    terms: Sequence[Term],
    normalizer: Normalizer,
    schedule: Schedule,
    x: jax.Array,
    t: jax.Array,
    log_step: jax.Array,
    mask: jax.Array,
    values: jax.Array,
    keys,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``corrector_steps`` MCMC steps at level ``t`` on the free (unconditioned) entries.

    Returns ``(x, log_step [B], mean acceptance probability [B])``; ``log_step`` is each chain's
    log step-size multiplier, adapted toward ``target_accept`` when a Metropolis test runs.
    """
    sigma = jnp.sqrt(1.0 - _alpha_bar(schedule, t))
    target = _corrector_target(denoiser, terms, normalizer, schedule, t)
    free = jnp.logical_not(mask).astype(x.dtype)
    metropolis = denoiser.has_energy and spec.corrector in ("mala", "hmc")
    adaptation = 0.1  # step of the log step size per unit of acceptance error

    def langevin(x, log_step, keys):
        step = _per_sample(spec.corrector_step_size * sigma**2 * jnp.exp(log_step))
        noise_keys, accept_keys = split_keys(keys, 2)
        log_p, score = target(x)
        proposal = x + free * (0.5 * step * score + jnp.sqrt(step) * _normal(noise_keys, x))
        if not metropolis:
            return proposal, jnp.ones(x.shape[0])
        log_p_new, score_new = target(proposal)
        forward = jnp.sum(free * (proposal - x - 0.5 * step * score) ** 2, axis=(1, 2))
        backward = jnp.sum(free * (x - proposal - 0.5 * step * score_new) ** 2, axis=(1, 2))
        log_ratio = log_p_new - log_p + (forward - backward) / (2 * step[:, 0, 0])
        accepted, probability = _metropolis(accept_keys, log_ratio)
        return jnp.where(_per_sample(accepted), proposal, x), probability

    def hamiltonian(x, log_step, keys):
        step = _per_sample(jnp.sqrt(spec.corrector_step_size * sigma**2 * jnp.exp(log_step)))
        momentum_keys, accept_keys = split_keys(keys, 2)
        momentum = free * _normal(momentum_keys, x)
        log_p, score = target(x)
        position, velocity = x, momentum + 0.5 * step * score
        for leap in range(spec.leapfrog_steps):
            position = position + free * step * velocity
            log_p_new, score_new = target(position)
            last = leap == spec.leapfrog_steps - 1
            velocity = velocity + (0.5 if last else 1.0) * step * score_new
        if not metropolis:
            return position, jnp.ones(x.shape[0])

        def kinetic(v: jax.Array) -> jax.Array:
            return 0.5 * jnp.sum(free * v**2, axis=(1, 2))

        log_ratio = log_p_new - log_p + kinetic(momentum) - kinetic(velocity)
        accepted, probability = _metropolis(accept_keys, log_ratio)
        return jnp.where(_per_sample(accepted), position, x), probability

    move = hamiltonian if spec.corrector == "hmc" else langevin

    def one_step(carry, keys):
        x, log_step, acceptance = carry
        x, probability = move(x, log_step, keys)
        if metropolis:
            log_step = log_step + adaptation * (probability - spec.target_accept)
        return (impose(x, mask, values), log_step, acceptance + probability), None

    start = (x, log_step, jnp.zeros(x.shape[0]))
    step_keys = split_keys(keys, spec.corrector_steps)
    (x, log_step, acceptance), _ = jax.lax.scan(one_step, start, step_keys)
    return x, log_step, acceptance / spec.corrector_steps


# --- sequential Monte Carlo over each query's particles ---------------------------------------


def composed_energy(
    terms: Sequence[Term], normalizer: Normalizer, x: jax.Array, clean: jax.Array, t: jax.Array
) -> jax.Array:
    """``[B]`` ``Σ w_k E_k`` at level ``t``: ``noisy`` terms on the sample ``x`` [B, H, D],
    ``denoised`` terms on its clean estimate ``clean`` [B, H, D] (both normalized); non-finite
    totals become ``HUGE_ENERGY``."""
    total = jnp.zeros(x.shape[0])
    for on, trajectories in (("noisy", x), ("denoised", clean)):
        chosen = [term for term in terms if term.on == on]
        if chosen:
            energies = term_energies(chosen, normalizer.unnormalize(trajectories), t)
            total = total + energies @ term_weights(chosen)
    return jnp.nan_to_num(total, nan=HUGE_ENERGY, posinf=HUGE_ENERGY, neginf=-HUGE_ENERGY)


def effective_sample_fraction(log_weights: jax.Array) -> jax.Array:
    """``[Q]`` the effective sample size ``1 / Σ w²`` of each row of normalized weights
    ``softmax(log_weights [Q, N])``, as a fraction of ``N`` (1: equal weights)."""
    weights = jax.nn.softmax(log_weights, axis=1)
    return 1.0 / (log_weights.shape[1] * jnp.sum(weights**2, axis=1))


def systematic_resample(keys: jax.Array, log_weights: jax.Array) -> jax.Array:
    """``[Q, N]`` ancestor indices drawn for each row of ``log_weights`` [Q, N] by systematic
    resampling (one uniform per row from ``keys`` [Q]): particle ``n`` is kept about
    ``N w_n`` times, in order."""
    count = log_weights.shape[1]
    cumulative = jnp.cumsum(jax.nn.softmax(log_weights, axis=1), axis=1)
    cumulative = cumulative / cumulative[:, -1:]  # exactly 1 at the end despite rounding
    offsets = jax.vmap(jax.random.uniform)(keys)
    points = (offsets[:, None] + jnp.arange(count)) / count
    ancestors = jax.vmap(jnp.searchsorted)(cumulative, points)
    return jnp.minimum(ancestors, count - 1)


def _grouped(array: jax.Array, particles: int) -> jax.Array:
    return array.reshape(-1, particles, *array.shape[1:])


def _reweight(
    spec: SamplerSpec,
    schedule: Schedule,
    terms: Sequence[Term],
    normalizer: Normalizer,
    particles: int,
    carry: _Carry,
    x: jax.Array,
    clean: jax.Array,
    t: jax.Array,
    keys: jax.Array,
) -> tuple[_Carry, jax.Array, jax.Array]:
    """One SMC step at level ``t`` on ``x`` [B, H, D] and its ``clean`` estimate, ``B`` =
    queries × ``particles`` consecutive: weights by the change of the tempered energy, then
    resampling of the queries whose effective sample size fell below the threshold. Returns
    the carry with the weights and statistics, and the (resampled) ``x`` and ``clean``."""
    energy = composed_energy(terms, normalizer, x, clean, t)
    tempered = _alpha_bar(schedule, t) * energy / spec.energy_temperature
    log_weights = _grouped(carry.log_weight + carry.tempered - tempered, particles)  # [Q, N]
    fraction = effective_sample_fraction(log_weights)
    resampling = fraction < spec.ess_threshold  # [Q]
    first_keys = jax.vmap(lambda key: jax.random.fold_in(key, RESAMPLE_STREAM))(keys[::particles])
    kept = jnp.broadcast_to(jnp.arange(particles), log_weights.shape)
    ancestors = jnp.where(resampling[:, None], systematic_resample(first_keys, log_weights), kept)

    def descend(array: jax.Array) -> jax.Array:
        grouped = _grouped(array, particles)
        index = ancestors.reshape(*ancestors.shape, *([1] * (grouped.ndim - 2)))
        return jnp.take_along_axis(grouped, index, axis=1).reshape(array.shape)

    per_particle = functools.partial(jnp.repeat, repeats=particles)
    carry = carry.replace(
        log_step=descend(carry.log_step),
        acceptance=descend(carry.acceptance),
        log_weight=jnp.where(resampling[:, None], 0.0, log_weights).reshape(-1),
        tempered=descend(tempered),
        ess=carry.ess + per_particle(fraction),
        resamples=carry.resamples + per_particle(resampling),
    )
    return carry, descend(x), descend(clean)


# --- the sampler ------------------------------------------------------------------------------


class _Carry(struct.PyTreeNode):
    """What one level hands to the next: ``x`` [B, H, D], corrector ``log_step`` [B] and summed
    ``acceptance`` [B]; for SMC the particles' ``log_weight`` [B], their last ``tempered``
    energy [B], the summed effective sample fraction ``ess`` [B] and the ``resamples`` [B]."""

    x: jax.Array
    log_step: jax.Array
    acceptance: jax.Array
    log_weight: jax.Array
    tempered: jax.Array
    ess: jax.Array
    resamples: jax.Array


def _level_step(
    spec: SamplerSpec,
    particles: int,
    schedule: Schedule,
    denoiser: Denoiser,
    terms: tuple[Term, ...],
    normalizer: Normalizer,
    mask: jax.Array,
    values: jax.Array,
    carry: _Carry,
    inputs: tuple[jax.Array, jax.Array, jax.Array],
) -> _Carry:
    """One reverse step from level ``t`` to ``t_prev`` (``inputs = (t, t_prev, keys [B])``):
    guidance, one model call, SMC reweighting and resampling, the DDPM or DDIM update,
    conditions, then the corrector."""
    t, t_prev, step_keys = inputs
    update_keys, corrector_keys = split_keys(step_keys, 2)
    x, clean = _clean_estimate(
        spec, schedule, denoiser, terms, normalizer, carry.x, t, mask, values
    )
    if spec.smc:
        carry, x, clean = _reweight(
            spec, schedule, terms, normalizer, particles, carry, x, clean, t, step_keys
        )
    if spec.method == "ddpm":
        x = _ddpm_update(spec, schedule, x, clean, t, update_keys)
    else:
        x = _ddim_update(spec, schedule, x, clean, t, t_prev, update_keys)
    carry = carry.replace(x=impose(x, mask, values))
    if not _corrects(spec):
        return carry

    def correct(carry: _Carry) -> _Carry:
        x, log_step, accepted = _correct(
            spec, denoiser, terms, normalizer, schedule, carry.x, t_prev, carry.log_step, mask,
            values, corrector_keys,
        )  # fmt: skip
        return carry.replace(x=x, log_step=log_step, acceptance=carry.acceptance + accepted)

    # the last step yields the clean sample, which has no level left to correct at
    return jax.lax.cond(t_prev >= 0, correct, lambda carry: carry, carry)


def _corrects(spec: SamplerSpec) -> bool:
    return spec.corrector != "none" and spec.corrector_steps > 0


@functools.partial(jax.jit, static_argnames=("spec",))
def _start(
    keys: jax.Array,
    spec: SamplerSpec,
    schedule: Schedule,
    mask: jax.Array,
    values: jax.Array,
    warm_start: jax.Array | None,
) -> tuple[_Carry, tuple[jax.Array, jax.Array, jax.Array]]:
    """The first carry (noise, or the re-noised warm start, conditions imposed) and the per-level
    loop inputs ``(t [L], t_prev [L], keys [L, B])``."""
    levels = sampling_levels(spec, schedule.n_steps)
    previous = np.append(levels[1:], -1).astype(np.int32)  # -1: the clean data
    init_keys, loop_keys = split_keys(keys, 2)
    noise = _normal(init_keys, values) * spec.noise_scale
    if warm_start is None:
        x = noise
    else:
        x = add_noise(schedule, warm_start, jnp.full((values.shape[0],), levels[0]), noise)
    zeros = jnp.zeros(values.shape[0])
    carry = _Carry(impose(x, mask, values), zeros, zeros, zeros, zeros, zeros, zeros)
    return carry, (jnp.asarray(levels), jnp.asarray(previous), split_keys(loop_keys, len(levels)))


def _result(spec: SamplerSpec, schedule: Schedule, carry: _Carry) -> SampleResult:
    levels = len(sampling_levels(spec, schedule.n_steps))
    corrected_levels = levels - 1 if _corrects(spec) else 0
    acceptance = carry.acceptance / corrected_levels if corrected_levels else 1.0
    ones = jnp.ones(carry.x.shape[0])
    return SampleResult(
        trajectories=carry.x,
        acceptance=acceptance * ones,
        ess=carry.ess / levels if spec.smc else ones,
        resamples=carry.resamples,
        evaluations=network_evaluations(spec, schedule.n_steps),
    )


@functools.partial(jax.jit, static_argnames=("spec", "particles"))
def sample_in_one_scan(
    keys, spec, schedule, denoiser, terms, normalizer, mask, values, warm, particles=1
):
    """``sample`` with ``loop: scan``: one compiled program for the whole plan."""
    carry, inputs = _start(keys, spec, schedule, mask, values, warm)
    step = functools.partial(
        _level_step, spec, particles, schedule, denoiser, terms, normalizer, mask, values
    )
    carry, _ = jax.lax.scan(lambda carry, inputs: (step(carry, inputs), None), carry, inputs)
    return _result(spec, schedule, carry)


@functools.partial(jax.jit, static_argnames=("spec", "particles"))
def _one_level(
    spec, particles, schedule, denoiser, terms, normalizer, mask, values, carry, inputs, index
):
    level_inputs = jax.tree.map(lambda array: array[index], inputs)
    return _level_step(
        spec, particles, schedule, denoiser, terms, normalizer, mask, values, carry, level_inputs
    )


def sample(
    keys: jax.Array,
    spec: SamplerSpec,
    schedule: Schedule,
    denoiser: Denoiser,
    terms: tuple[Term, ...],
    normalizer: Normalizer,
    mask: jax.Array,
    values: jax.Array,
    warm_start: jax.Array | None = None,
    particles: int = 1,
) -> SampleResult:
    """``B`` trajectories from the composed model (see the module docstring).

    ``keys`` [B] are the samples' random keys (``jax.random.split(key, B)``); ``mask``
    [1, H, D] bool and ``values`` [B, H, D] (normalized) are the hard conditions;
    ``warm_start`` [B, H, D] (normalized) is a previous plan to re-noise to ``spec.start_level``;
    ``particles``: with ``spec.smc``, the batch is ``B / particles`` queries of this many
    consecutive particles each, resampled among themselves.

    ``spec.loop``: ``scan`` runs every level in one ``lax.scan`` (one dispatch per plan);
    ``python`` dispatches one jitted level at a time. Both give the same samples. On XLA:CPU the
    scan is faster for small batches (the loop-invariant weight work is hoisted out of the loop)
    and slower for large ones (convolutions inside loop bodies run slower, jax-ml/jax#12868), so
    ``auto`` uses ``python`` on CPU from ``PYTHON_LOOP_MIN_BATCH`` samples on and ``scan``
    otherwise (results/bench.md has the measurements).
    """
    if keys.shape != values.shape[:1]:
        raise ValueError(f"need one key per sample: keys {keys.shape}, values {values.shape}")
    particles = particles if spec.smc else 1
    if particles < 1 or values.shape[0] % particles:
        raise ValueError(f"{values.shape[0]} samples are not queries of {particles} particles")
    arguments = (schedule, denoiser, terms, normalizer, mask, values)
    if resolved_loop(spec, values.shape[0]) == "scan":
        return sample_in_one_scan(keys, spec, *arguments, warm_start, particles)
    carry, inputs = _start(keys, spec, schedule, mask, values, warm_start)
    for index in range(len(sampling_levels(spec, schedule.n_steps))):
        carry = _one_level(spec, particles, *arguments, carry, inputs, jnp.int32(index))
    return _result(spec, schedule, carry)


def resolved_loop(spec: SamplerSpec, batch: int) -> str:
    """``scan`` or ``python``: ``spec.loop``, with ``auto`` decided by backend and batch size."""
    if spec.loop != "auto":
        return spec.loop
    on_cpu = jax.default_backend() == "cpu"
    return "python" if on_cpu and batch >= PYTHON_LOOP_MIN_BATCH else "scan"
