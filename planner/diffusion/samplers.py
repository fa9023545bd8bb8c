"""Jitted guided samplers: every noise level's work (guidance, model call, update, corrector) in
one jitted step, iterated by ``lax.scan`` in one dispatch or by a Python loop (see ``sample``).

``sample(keys, spec, schedule, denoiser, terms, normalizer, mask, values, warm_start=None)``
draws ``B`` trajectories ``[B, H, D]`` (normalized) from the denoiser composed with energy terms,
trajectory ``b`` from its own key ``keys[b]``: a sample does not depend on what else is in the
batch, so planning 100 episodes at once gives the plans of planning them one by one.

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
from planner.energies.base import Term, guidance_gradient

MIN_VARIANCE = 1e-20  # Diffuser clips the log posterior variance at this value
PYTHON_LOOP_MIN_BATCH = 32  # ``loop: auto`` on CPU: one dispatch per level from this batch on


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
    start_level: int | None = None  # warm start level; None = start from pure noise
    loop: Literal["auto", "scan", "python"] = "auto"  # how levels are iterated; see ``sample``

    def replace(self, **changes) -> SamplerSpec:
        return dataclasses.replace(self, **changes)


class SampleResult(struct.PyTreeNode):
    """``trajectories`` [B, H, D] normalized; ``acceptance`` [B] mean Metropolis acceptance of the
    corrector (1 where nothing was tested); ``evaluations`` network calls per trajectory."""

    trajectories: jax.Array
    acceptance: jax.Array
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


# --- the sampler ------------------------------------------------------------------------------


class _Carry(struct.PyTreeNode):
    """What one level hands to the next: ``x`` [B, H, D], corrector ``log_step`` [B] and summed
    ``acceptance`` [B]."""

    x: jax.Array
    log_step: jax.Array
    acceptance: jax.Array


def _level_step(
    spec: SamplerSpec,
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
    guidance, one model call, the DDPM or DDIM update, conditions, then the corrector."""
    t, t_prev, step_keys = inputs
    update_keys, corrector_keys = split_keys(step_keys, 2)
    x, clean = _clean_estimate(
        spec, schedule, denoiser, terms, normalizer, carry.x, t, mask, values
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
        return _Carry(x, log_step, carry.acceptance + accepted)

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
    batch = jnp.zeros(values.shape[0])
    carry = _Carry(impose(x, mask, values), batch, batch)
    return carry, (jnp.asarray(levels), jnp.asarray(previous), split_keys(loop_keys, len(levels)))


def _result(spec: SamplerSpec, schedule: Schedule, carry: _Carry) -> SampleResult:
    levels = len(sampling_levels(spec, schedule.n_steps))
    corrected_levels = levels - 1 if _corrects(spec) else 0
    acceptance = carry.acceptance / corrected_levels if corrected_levels else 1.0
    return SampleResult(
        trajectories=carry.x,
        acceptance=acceptance * jnp.ones(carry.x.shape[0]),
        evaluations=network_evaluations(spec, schedule.n_steps),
    )


@functools.partial(jax.jit, static_argnames=("spec",))
def sample_in_one_scan(keys, spec, schedule, denoiser, terms, normalizer, mask, values, warm):
    """``sample`` with ``loop: scan``: one compiled program for the whole plan."""
    carry, inputs = _start(keys, spec, schedule, mask, values, warm)
    step = functools.partial(_level_step, spec, schedule, denoiser, terms, normalizer, mask, values)
    carry, _ = jax.lax.scan(lambda carry, inputs: (step(carry, inputs), None), carry, inputs)
    return _result(spec, schedule, carry)


@functools.partial(jax.jit, static_argnames=("spec",))
def _one_level(spec, schedule, denoiser, terms, normalizer, mask, values, carry, inputs, index):
    level_inputs = jax.tree.map(lambda array: array[index], inputs)
    return _level_step(
        spec, schedule, denoiser, terms, normalizer, mask, values, carry, level_inputs
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
) -> SampleResult:
    """``B`` trajectories from the composed model (see the module docstring).

    ``keys`` [B] are the samples' random keys (``jax.random.split(key, B)``); ``mask``
    [1, H, D] bool and ``values`` [B, H, D] (normalized) are the hard conditions;
    ``warm_start`` [B, H, D] (normalized) is a previous plan to re-noise to ``spec.start_level``.

    ``spec.loop``: ``scan`` runs every level in one ``lax.scan`` (one dispatch per plan);
    ``python`` dispatches one jitted level at a time. Both give the same samples. On XLA:CPU the
    scan is faster for small batches (the loop-invariant weight work is hoisted out of the loop)
    and slower for large ones (convolutions inside loop bodies run slower, jax-ml/jax#12868), so
    ``auto`` uses ``python`` on CPU from ``PYTHON_LOOP_MIN_BATCH`` samples on and ``scan``
    otherwise (results/bench.md has the measurements).
    """
    if keys.shape != values.shape[:1]:
        raise ValueError(f"need one key per sample: keys {keys.shape}, values {values.shape}")
    arguments = (schedule, denoiser, terms, normalizer, mask, values)
    if resolved_loop(spec, values.shape[0]) == "scan":
        return sample_in_one_scan(keys, spec, *arguments, warm_start)
    carry, inputs = _start(keys, spec, schedule, mask, values, warm_start)
    for index in range(len(sampling_levels(spec, schedule.n_steps))):
        carry = _one_level(spec, *arguments, carry, inputs, jnp.int32(index))
    return _result(spec, schedule, carry)


def resolved_loop(spec: SamplerSpec, batch: int) -> str:
    """``scan`` or ``python``: ``spec.loop``, with ``auto`` decided by backend and batch size."""
    if spec.loop != "auto":
        return spec.loop
    on_cpu = jax.default_backend() == "cpu"
    return "python" if on_cpu and batch >= PYTHON_LOOP_MIN_BATCH else "scan"
