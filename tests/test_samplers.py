"""Samplers on closed-form Gaussian models, where every answer is known exactly.

Data ``N(μ, s²)`` per coordinate gives ``p_t = N(√ᾱ μ, ᾱ s² + 1 - ᾱ)``, the exact noise
prediction ``ε(x, t) = σ_t (x - √ᾱ μ) / v_t`` and the energy ``E = σ_t/2 (x - √ᾱ μ)² / v_t (+ its
log-normalizer)``, whose gradient is ``ε``. ``N_SAMPLES`` independent coordinates give a sample
mean with standard error ``sqrt(var / N)`` and a sample variance with ``var · sqrt(2 / N)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planner.data.normalize import Normalizer
from planner.diffusion.denoisers import (
    Denoiser,
    combine,
    mix,
    negate,
    overlapping_windows,
    window_starts,
)
from planner.diffusion.samplers import (
    SamplerSpec,
    effective_sample_fraction,
    sample,
    sampling_levels,
    systematic_resample,
)
from planner.diffusion.schedule import cosine_schedule
from planner.energies.base import guidance_gradient, mixture, negation, term, weighted_sum
from planner.energies.terms import Layout, circle_obstacle

SCHEDULE = cosine_schedule(32)
# DDPM with finitely many levels under-disperses (exact scores, 32 levels: variance 18 % low;
# 512 levels: 2 %); tests of the plain sampler's distribution use the fine schedule.
FINE = cosine_schedule(512)
BATCH, HORIZON, DIM = 2000, 4, 2
N_SAMPLES = BATCH * HORIZON * DIM
IDENTITY = Normalizer(jnp.zeros(DIM), jnp.ones(DIM))
FREE = jnp.zeros((1, HORIZON, DIM), bool)
ZEROS = jnp.zeros((BATCH, HORIZON, DIM))
EXACT = SamplerSpec(clip_denoised=False)


def gaussian(mean: float, std: float, schedule=SCHEDULE) -> Denoiser:
    def moments(t):
        alpha_bar = schedule.alphas_cumprod[t][:, None, None]
        return alpha_bar, alpha_bar * std**2 + 1 - alpha_bar

    def energy(params, x, t):
        alpha_bar, variance = moments(t)
        sigma = jnp.sqrt(1 - alpha_bar)
        quadratic = (x - jnp.sqrt(alpha_bar) * params) ** 2 / variance + jnp.log(variance)
        return jnp.sum(sigma / 2 * quadratic, axis=(1, 2))

    def noise(params, x, t):
        alpha_bar, variance = moments(t)
        return jnp.sqrt(1 - alpha_bar) * (x - jnp.sqrt(alpha_bar) * params) / variance

    return Denoiser(jnp.float32(mean), noise, energy)


def draw(spec, denoiser, seed=0, terms=(), mask=FREE, values=ZEROS, schedule=SCHEDULE):
    keys = jax.random.split(jax.random.key(seed), values.shape[0])
    result = sample(keys, spec, schedule, denoiser, terms, IDENTITY, mask, values)
    return np.asarray(result.trajectories), result


def assert_moments(x, mean, variance, bias=0.0):
    """Sample mean within 4 standard errors; sample variance within 4 standard errors plus a
    relative ``bias`` allowance for finite MCMC chains."""
    assert abs(x.mean() - mean) < 4 * np.sqrt(variance / x.size)
    assert abs(x.var() - variance) < 4 * variance * np.sqrt(2 / x.size) + bias * variance


def test_plain_ddpm_reproduces_the_data_distribution():
    x, _ = draw(EXACT, gaussian(0.7, 0.5, FINE), schedule=FINE)
    assert_moments(x, 0.7, 0.25, bias=0.03)


@pytest.mark.parametrize("corrector", ["mala", "hmc"])
def test_product_of_two_energies_matches_the_product_gaussian(corrector):
    # N(-1, 0.25) * N(1, 0.25) = N(0, 0.125); plain DDPM with the summed score gets the variance
    # badly wrong (about 0.057), the Metropolis-corrected annealed chains recover it.
    product = combine([gaussian(-1.0, 0.5), gaussian(1.0, 0.5)], [1.0, 1.0])
    plain, _ = draw(EXACT, product)
    assert plain.var() < 0.08
    spec = EXACT.replace(corrector=corrector, corrector_steps=20, corrector_step_size=1.0)
    x, result = draw(spec, product)
    assert 0.3 < float(result.acceptance.mean()) < 0.95
    assert_moments(x, 0.0, 0.125, bias=0.05)


def test_mixture_matches_the_mixture_moments():
    # ½ N(-1, 0.25) + ½ N(1, 0.25): mean 0, variance 0.25 + 1; each trajectory picks one mode.
    mixture = mix([gaussian(-1.0, 0.5), gaussian(1.0, 0.5)], SCHEDULE)
    x, _ = draw(EXACT.replace(corrector="mala", corrector_steps=5), mixture)
    per_trajectory = x.mean(axis=(1, 2))
    fraction_right = (per_trajectory > 0).mean()
    assert abs(fraction_right - 0.5) < 4 * np.sqrt(0.25 / BATCH)
    assert abs(x.var() - 1.25) < 0.1


def test_negation_moves_mass_away_as_predicted():
    # (1 + λ) E[N(0, 1)] - λ E[N(1, 1)] at λ = 0.5 is N(-0.5, 1): mass pushed away from 1.
    negation = negate(gaussian(0.0, 1.0), gaussian(1.0, 1.0), 0.5)
    x, _ = draw(EXACT.replace(corrector="mala", corrector_steps=10), negation)
    assert_moments(x, -0.5, 1.0, bias=0.05)


def test_ddim_with_every_step_and_eta_one_matches_ddpm_in_distribution():
    model = gaussian(0.3, 0.6, FINE)
    ddpm, _ = draw(EXACT, model, seed=1, schedule=FINE)
    ddim, _ = draw(EXACT.replace(method="ddim", eta=1.0), model, seed=2, schedule=FINE)
    assert len(sampling_levels(EXACT.replace(method="ddim"), 32)) == 32
    standard_error = np.sqrt(2 * 0.36 / N_SAMPLES)
    assert abs(ddpm.mean() - ddim.mean()) < 4 * standard_error
    assert abs(ddpm.var() - ddim.var()) < 4 * 0.36 * np.sqrt(4 / N_SAMPLES)


def test_noise_scale_is_a_temperature_of_deterministic_ddim():
    # deterministic DDIM maps the initial noise z to about mu + s z for Gaussian data, so scaling
    # the initial noise scales the samples' standard deviation; 0 draws the mean every time
    model = gaussian(0.3, 0.6, FINE)
    spec = EXACT.replace(method="ddim", n_steps=64)
    half, _ = draw(spec.replace(noise_scale=0.5), model, seed=3, schedule=FINE)
    assert_moments(half, 0.3, (0.5 * 0.6) ** 2, bias=0.05)
    cold, _ = draw(spec.replace(noise_scale=0.0), model, seed=3, schedule=FINE)
    np.testing.assert_allclose(cold, 0.3, atol=1e-3)


def test_a_sample_does_not_depend_on_the_rest_of_the_batch():
    model = gaussian(0.3, 0.6)
    keys = jax.random.split(jax.random.key(2), 4)
    spec = EXACT.replace(corrector="ula", corrector_steps=2)
    whole = sample(keys, spec, SCHEDULE, model, (), IDENTITY, FREE, jnp.zeros((4, HORIZON, DIM)))
    part = sample(keys[2:], spec, SCHEDULE, model, (), IDENTITY, FREE, jnp.zeros((2, HORIZON, DIM)))
    np.testing.assert_allclose(part.trajectories, whole.trajectories[2:], atol=1e-6)


def test_scan_sampler_equals_a_python_loop_reference():
    model = gaussian(0.3, 0.6)
    batch = 3
    values = jnp.zeros((batch, HORIZON, DIM))
    x, _ = draw(EXACT.replace(noise_scale=1.0), model, seed=5, values=values)

    # the reference: Diffuser's p_sample_loop written as a plain loop; sample b's noise comes
    # from its own key, split into an initial key and one key per level
    shape = values.shape[1:]
    init_keys, level_keys = zip(
        *[jax.random.split(key) for key in jax.random.split(jax.random.key(5), batch)],
        strict=True,
    )
    y = np.stack([np.asarray(jax.random.normal(key, shape), np.float64) for key in init_keys])
    betas = np.asarray(SCHEDULE.betas, np.float64)
    alpha_bar = np.cumprod(1 - betas)
    level_keys = [jax.random.split(key, 32) for key in level_keys]
    for t in range(31, -1, -1):
        update_keys = [jax.random.split(keys[31 - t])[0] for keys in level_keys]
        prev = alpha_bar[t - 1] if t > 0 else 1.0
        eps = np.asarray(model.noise(jnp.asarray(y, jnp.float32), jnp.full((batch,), t)))
        clean = (y - np.sqrt(1 - alpha_bar[t]) * eps) / np.sqrt(alpha_bar[t])
        mean = (betas[t] * np.sqrt(prev) * clean + (1 - prev) * np.sqrt(1 - betas[t]) * y) / (
            1 - alpha_bar[t]
        )
        std = np.sqrt(betas[t] * (1 - prev) / (1 - alpha_bar[t]))
        noise = np.stack([np.asarray(jax.random.normal(key, shape)) for key in update_keys])
        y = mean + (std * noise if t > 0 else 0.0)
    np.testing.assert_allclose(x, y, atol=2e-4)


@pytest.mark.parametrize("corrector", ["none", "mala"])
def test_scan_and_python_loops_draw_the_same_samples(corrector):
    model = gaussian(0.3, 0.6)
    layout = Layout(action_dim=0, observation_dim=2, position=(0, 1), velocity=())
    obstacle = circle_obstacle(layout, [0.2, 0.2], 0.3)
    spec = EXACT.replace(corrector=corrector, corrector_steps=2, start_level=20)
    values = ZEROS[:4]
    keys = jax.random.split(jax.random.key(7), 4)
    warm = jnp.full_like(values, 0.5)
    draws = [
        sample(keys, spec.replace(loop=loop), SCHEDULE, model, (obstacle,), IDENTITY, FREE,
               values, warm)
        for loop in ("scan", "python")
    ]  # fmt: skip
    np.testing.assert_allclose(draws[0].trajectories, draws[1].trajectories, atol=1e-5)
    np.testing.assert_allclose(draws[0].acceptance, draws[1].acceptance, atol=1e-6)


def test_inpainted_entries_equal_the_condition_exactly():
    mask = jnp.zeros((1, HORIZON, DIM), bool).at[0, 0, :].set(True).at[0, -1, 1].set(True)
    values = jax.random.uniform(jax.random.key(3), (8, HORIZON, DIM), minval=-2, maxval=2)
    values = jnp.where(mask, values, 0.0)
    for spec in (
        EXACT,
        EXACT.replace(method="ddim", n_steps=5),
        EXACT.replace(corrector="ula", corrector_steps=2),
    ):
        x, _ = draw(spec, gaussian(0.0, 1.0), mask=mask, values=values)
        np.testing.assert_array_equal(x[:, 0, :], np.asarray(values[:, 0, :]))
        np.testing.assert_array_equal(x[:, -1, 1], np.asarray(values[:, -1, 1]))


def test_guidance_gradients_equal_finite_differences():
    jax.config.update("jax_enable_x64", True)
    try:
        layout = Layout(action_dim=0, observation_dim=2, position=(0, 1), velocity=())
        obstacle = circle_obstacle(layout, [0.1, 0.2], 0.8, scale=0.5, weight=3.0)
        normalizer = Normalizer(jnp.array([0.5, -0.5]), jnp.array([2.0, 1.5]))
        x = jax.random.normal(jax.random.key(0), (1, 6, 2), jnp.float64) * 0.3
        gradient = guidance_gradient([obstacle], x, jnp.int32(5), 0, normalizer, 1.0)

        def energy(y):
            return 0.5 * 3.0 * obstacle.energy(normalizer.unnormalize(y[0]), 0)

        step = 1e-6
        for index in [(0, 0, 0), (0, 2, 1), (0, 5, 0)]:
            bump = jnp.zeros_like(x).at[index].set(step)
            numeric = (energy(x + bump) - energy(x - bump)) / (2 * step)
            assert float(gradient[index]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-8)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_an_obstacle_energy_lowers_the_collision_rate():
    # Gaussian trajectories centred on a disc; the obstacle term pushes them out of it.
    layout = Layout(action_dim=0, observation_dim=2, position=(0, 1), velocity=())
    obstacle = circle_obstacle(layout, [0.0, 0.0], 0.5, weight=10.0, scale=0.05)
    model = gaussian(0.0, 0.5)
    plain, _ = draw(EXACT, model, seed=4, values=ZEROS[:400])
    guided, _ = draw(EXACT, model, seed=4, values=ZEROS[:400], terms=(obstacle,))

    def collisions(x):
        return (np.linalg.norm(x, axis=-1) < 0.5).mean()

    assert collisions(plain) > 0.3
    assert collisions(guided) < 0.25 * collisions(plain)


@pytest.mark.parametrize("corrector", ["ula", "mala"])
def test_correctors_follow_each_terms_guidance_schedule(corrector):
    # a pull toward 3 that would move every sample: off its schedule (select-only, or stopped
    # above every level) the corrector's samples equal those without it; on it, they move
    spec = EXACT.replace(method="ddim", n_steps=8, corrector=corrector, corrector_steps=2)
    model = gaussian(0.0, 0.5)

    def pull(**schedule):
        return term(lambda x, t: jnp.sum((x - 3.0) ** 2), "pull", weight=2.0, **schedule)

    values = ZEROS[:200]
    plain, _ = draw(spec, model, seed=7, values=values)
    for off in (pull(n_guide_steps=0), pull(t_stopgrad=SCHEDULE.n_steps)):
        unmoved, _ = draw(spec, model, seed=7, values=values, terms=(off,))
        np.testing.assert_allclose(unmoved, plain, atol=1e-5)
    pulled, _ = draw(spec, model, seed=7, values=values, terms=(pull(scale=0.0, on="noisy"),))
    assert pulled.mean() > plain.mean() + 0.5  # no guidance step: the corrector alone pulls


def tracing_model(traces: list) -> Denoiser:
    """A Gaussian model that appends its input shape to ``traces`` whenever it is traced."""
    base = gaussian(0.0, 1.0)

    def counting_noise(params, x, t):
        traces.append(x.shape)
        return base.noise_fn(params, x, t)

    return Denoiser(base.params, counting_noise, None)


POINT_LAYOUT = Layout(action_dim=0, observation_dim=2, position=(0, 1), velocity=())


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_one_trace_per_shape(loop):
    traces = []
    model = tracing_model(traces)
    layout = POINT_LAYOUT
    spec = SamplerSpec(method="ddim", n_steps=4, loop=loop)
    for seed, centre in enumerate(([0.0, 0.0], [1.0, -1.0], [2.0, 0.5])):
        obstacle = circle_obstacle(layout, centre, 0.3)
        model = model.replace(params=jnp.float32(seed))
        draw(spec, model, seed=seed, terms=(obstacle,), values=ZEROS[:5])
    assert len(traces) == 1
    draw(spec, model, terms=(obstacle,), values=ZEROS[:6])
    assert len(traces) == 2


def test_warm_start_from_a_low_level_stays_near_the_previous_plan():
    model = gaussian(0.0, 1.0)
    previous = jnp.full((50, HORIZON, DIM), 0.8)
    spec = EXACT.replace(method="ddim", start_level=3)
    keys = jax.random.split(jax.random.key(0), 50)
    result = sample(keys, spec, SCHEDULE, model, (), IDENTITY, FREE, previous * 0, previous)
    assert abs(float(result.trajectories.mean()) - 0.8) < 0.1
    assert result.evaluations == 4


@pytest.mark.parametrize(
    "corrector, extra", [("none", {}), ("ula", {}), ("mala", {}), ("hmc", {"leapfrog_steps": 2})]
)
def test_evaluations_count_every_model_execution(corrector, extra):
    # the equal-compute comparisons rest on this count: each execution of the model's noise or
    # energy (a value-and-gradient counts once) is tallied on the host
    executions = []
    model = gaussian(0.0, 1.0)

    def counted(fn):
        def wrapped(params, x, t):
            jax.debug.callback(lambda: executions.append(1))
            return fn(params, x, t)

        return wrapped

    counting = Denoiser(model.params, counted(model.noise_fn), counted(model.energy_fn))
    steps = 0 if corrector == "none" else 2
    spec = EXACT.replace(
        method="ddim", n_steps=5, corrector=corrector, corrector_steps=steps, **extra
    )
    _, result = draw(spec, counting, values=ZEROS[:3])
    jax.effects_barrier()
    assert len(executions) == result.evaluations


def test_user_term_from_a_plain_function():
    prefer_positive = term(lambda trajectory, t: -jnp.sum(trajectory), "positive", scale=0.2)
    x, _ = draw(EXACT, gaussian(0.0, 0.5), terms=(prefer_positive,), values=ZEROS[:200])
    assert x.mean() > 0.1


def test_energy_operators_compose_plain_functions():
    def near_zero(x, t):
        return jnp.sum(x**2)

    def near_one(x, t):
        return jnp.sum((x - 1) ** 2)

    x = jnp.array([[0.5, 0.5]])  # both energies are 0.5 here
    assert float(weighted_sum([near_zero, near_one], [2.0, 3.0])(x, 0)) == pytest.approx(2.5)
    mixed = mixture([near_zero, near_one], temperature=0.5)(x, 0)
    assert float(mixed) == pytest.approx(0.5 - 0.5 * np.log(2), rel=1e-6)
    assert float(negation(near_zero, near_one, 0.5)(x, 0)) == pytest.approx(0.5)
    composed = term(mixture([near_zero, near_one], 0.1), "either")
    assert float(composed.energy(jnp.zeros((1, 2)), 0)) == pytest.approx(
        -0.1 * np.log(1 + np.exp(-20)), abs=1e-6
    )


def autoregressive(rho: float, schedule=FINE) -> Denoiser:
    """The exact denoiser of a stationary Gaussian AR(1) sequence ``x_{h+1} = ρ x_h + noise``
    (unit variance, covariance ``ρ^|i-j|``) of any length: ``ε = σ_t C_t⁻¹ x`` with ``C_t = ᾱ Σ
    + (1 - ᾱ) I``."""

    def noise(params, x, t):
        steps = jnp.arange(x.shape[1])
        covariance = params ** jnp.abs(steps[:, None] - steps[None, :])
        alpha_bar = schedule.alphas_cumprod[t][:, None, None]
        noisy = alpha_bar * covariance + (1 - alpha_bar) * jnp.eye(x.shape[1])
        return jnp.sqrt(1 - alpha_bar) * jnp.linalg.solve(noisy, x)

    return Denoiser(jnp.float32(rho), noise)


def test_overlapping_windows_compose_a_long_sequence_with_the_right_marginals():
    # A model of 4-step windows, composed over windows 2 steps apart into 10-step sequences,
    # should draw the 10-step AR(1) sequence: every step N(0, 1), neighbours correlated by ρ.
    rho, length = 0.8, 10
    values = jnp.zeros((BATCH, length, 1))
    free = jnp.zeros((1, length, 1), bool)
    composed = overlapping_windows(autoregressive(rho), window=4, stride=2)
    x, _ = draw(EXACT, composed, values=values, mask=free, schedule=FINE)
    x = x[..., 0]
    variance, neighbours = x.var(axis=0), (x[:, 1:] * x[:, :-1]).mean(axis=0)
    assert np.all(np.abs(variance - 1.0) < 0.15), variance
    assert np.all(np.abs(neighbours - rho) < 0.1), neighbours
    # the plain product of the windows counts each overlap twice: too little variance there
    double_counted = Denoiser(composed.params, lambda p, x, t: sum_of_windows(p, x, t, rho))
    y, _ = draw(EXACT, double_counted, values=values, mask=free, schedule=FINE)
    assert y[:, 2:8, 0].var(axis=0).max() < 0.8


def sum_of_windows(params, x, t, rho):
    """The windows' noise predictions summed without dividing out the overlaps."""
    model = autoregressive(rho)
    total = jnp.zeros_like(x)
    for start in window_starts(x.shape[1], 4, 2):
        total = total.at[:, start : start + 4].add(model.noise(x[:, start : start + 4], t))
    return total


def conditioned_autoregressive(rho: float, start: bool, goal: bool, schedule=FINE) -> Denoiser:
    """The exact denoiser of AR(1) windows (any length) whose first (``start``) and / or last
    (``goal``) steps are given clean, as a model trained with those conditions sees them: on the
    free steps ``ε = σ_t C_t⁻¹ (x - √ᾱ μ)`` with ``μ``, ``Σ`` their mean and covariance given
    the clean steps and ``C_t = ᾱ Σ + (1 - ᾱ) I``; 0 on the given steps (never trained)."""

    def noise(params, x, t):
        n = x.shape[1]
        given = np.array([0] * start + [n - 1] * goal)
        free = np.array([h for h in range(n) if h not in given])
        if not len(free):
            return jnp.zeros_like(x)
        steps = jnp.arange(n)
        covariance = params ** jnp.abs(steps[:, None] - steps[None, :])
        gain = covariance[jnp.ix_(free, given)] @ jnp.linalg.inv(covariance[jnp.ix_(given, given)])
        mean = x[:, given, 0] @ gain.T
        spread = covariance[jnp.ix_(free, free)] - gain @ covariance[jnp.ix_(given, free)]
        alpha_bar = schedule.alphas_cumprod[t][:, None, None]
        noisy = alpha_bar * spread + (1 - alpha_bar) * jnp.eye(len(free))
        residual = x[:, free] - jnp.sqrt(alpha_bar) * mean[..., None]
        return (
            jnp.zeros_like(x)
            .at[:, free]
            .set(jnp.sqrt(1 - alpha_bar) * jnp.linalg.solve(noisy, residual))
        )

    return Denoiser(jnp.float32(rho), noise)


@pytest.mark.parametrize("goal", [False, True])
def test_conditioned_windows_carry_the_plan_ends_through_every_window(goal):
    # Windows of a model trained with clean first (and last) steps, composed into 10 steps from
    # x_0 = 1.5 (and to x_9 = -1): each step's mean should follow the 10-step AR(1) given those
    # ends, which needs every window to be handed its clean boundary.
    rho, length, window, stride = 0.8, 10, 4, 2
    given = [0, length - 1] if goal else [0]
    ends = jnp.array([1.5, -1.0][: len(given)])
    mask = jnp.zeros((1, length, 1), bool).at[:, given].set(True)
    values = jnp.zeros((BATCH, length, 1)).at[:, given, 0].set(ends)
    steps = np.arange(length)
    covariance = rho ** np.abs(steps[:, None] - steps[None, :])
    gain = covariance[:, given] @ np.linalg.inv(covariance[np.ix_(given, given)])
    mean = gain @ np.asarray(ends)
    variance = np.diag(covariance - gain @ covariance[given])
    model = conditioned_autoregressive(rho, start=True, goal=goal)
    options = dict(schedule=FINE, action_dim=0, condition_start=True, condition_goal=goal)
    x = draw(EXACT, overlapping_windows(model, window, stride, **options), values=values,
             mask=mask, schedule=FINE)[0][..., 0]  # fmt: skip
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.1)
    # The windows are handed the boundary's estimate, not a draw of it: toward the free end of a
    # start-only chain the steps under-disperse (by up to 0.24 here; the naive composition
    # below, by 0.17).
    np.testing.assert_allclose(x.var(axis=0), variance, atol=0.3)
    # Composed as if unconditioned, the windows take their noisy first rows as clean: the
    # sequence drifts from the conditional mean.
    naive = overlapping_windows(model, window, stride)
    y = draw(EXACT, naive, values=values, mask=mask, schedule=FINE)[0][..., 0]
    assert np.abs(y.mean(axis=0) - mean).max() > 0.15


# --- sequential Monte Carlo -------------------------------------------------------------------


def test_smc_draws_the_product_of_the_model_and_a_potential():
    # data N(0, 0.25) times the potential exp(-(x - 1)² / (2 · 0.25)) is N(0.5, 0.125); the
    # potential is never used for guidance (n_guide_steps=0), only to weight the particles
    pull = term(lambda x, t: jnp.sum((x - 1.0) ** 2) / 0.5, "pull", n_guide_steps=0)
    queries, particles = 40, 64
    values = jnp.zeros((queries * particles, HORIZON, DIM))
    keys = jax.random.split(jax.random.key(11), values.shape[0])
    spec = EXACT.replace(smc=True, loop="scan")
    model = gaussian(0.0, 0.5, FINE)
    result = sample(keys, spec, FINE, model, (pull,), IDENTITY, FREE, values, particles=particles)
    x = np.asarray(result.trajectories)
    assert abs(x.mean() - 0.5) < 0.03
    assert abs(x.var() - 0.125) < 0.15 * 0.125
    assert 0 < float(result.ess.mean()) < 1 and int(result.resamples.max()) > 0
    plain, _ = draw(EXACT.replace(loop="scan"), model, values=values, schedule=FINE)
    assert abs(plain.mean()) < 0.03  # without the weights: the model's own mean


def test_smc_with_equal_potentials_keeps_every_particle_and_its_draws():
    constant = term(lambda x, t: 3.0 + 0.0 * jnp.sum(x), "constant", n_guide_steps=0)
    values = ZEROS[:32]
    keys = jax.random.split(jax.random.key(4), 32)
    model = gaussian(0.3, 0.6)
    plain = sample(keys, EXACT, SCHEDULE, model, (constant,), IDENTITY, FREE, values)
    smc = EXACT.replace(smc=True)
    steered = sample(keys, smc, SCHEDULE, model, (constant,), IDENTITY, FREE, values, particles=8)
    np.testing.assert_allclose(steered.trajectories, plain.trajectories, atol=1e-6)
    np.testing.assert_allclose(steered.ess, 1.0, atol=1e-6)
    assert int(steered.resamples.max()) == 0


def test_systematic_resampling_keeps_equal_weights_and_follows_a_certain_one():
    keys = jax.random.split(jax.random.key(0), 2)
    equal = jnp.zeros((2, 5))
    np.testing.assert_array_equal(systematic_resample(keys, equal), np.tile(np.arange(5), (2, 1)))
    np.testing.assert_allclose(effective_sample_fraction(equal), 1.0, rtol=1e-6)
    certain = jnp.array([[-jnp.inf, 0.0, -jnp.inf, -jnp.inf, -jnp.inf]] * 2)
    np.testing.assert_array_equal(systematic_resample(keys, certain), np.ones((2, 5)))
    np.testing.assert_allclose(effective_sample_fraction(certain), 0.2, rtol=1e-6)


def test_smc_queries_do_not_depend_on_each_other():
    pull = term(lambda x, t: jnp.sum((x - 1.0) ** 2), "pull", n_guide_steps=0)
    keys = jax.random.split(jax.random.key(9), 12)
    spec = EXACT.replace(smc=True, ess_threshold=1.0)  # resample at every level
    model = gaussian(0.0, 0.5)

    def run(keys):
        values = jnp.zeros((len(keys), HORIZON, DIM))
        return sample(keys, spec, SCHEDULE, model, (pull,), IDENTITY, FREE, values, particles=4)

    whole, part = run(keys), run(keys[4:8])
    np.testing.assert_allclose(part.trajectories, whole.trajectories[4:8], atol=1e-6)
    assert int(whole.resamples.min()) > len(sampling_levels(spec, SCHEDULE.n_steps)) // 2


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_smc_compiles_once_for_new_obstacles(loop):
    traces = []
    model = tracing_model(traces)
    spec = SamplerSpec(method="ddim", n_steps=4, loop=loop, smc=True)
    values = ZEROS[:8]
    for seed, centre in enumerate(([0.0, 0.0], [1.0, -1.0], [2.0, 0.5])):
        obstacle = circle_obstacle(POINT_LAYOUT, centre, 0.3)
        keys = jax.random.split(jax.random.key(seed), 8)
        sample(keys, spec, SCHEDULE, model, (obstacle,), IDENTITY, FREE, values, particles=4)
    assert len(traces) == 1
