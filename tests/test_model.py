import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planner.config import load_config
from planner.diffusion.conditioning import endpoint_conditions, impose
from planner.diffusion.losses import loss_weights
from planner.diffusion.schedule import (
    add_noise,
    cosine_schedule,
    start_from_noise,
)
from planner.models.denoiser import make_energy_fn, make_predict_fn, make_unet
from planner.models.unet import TemporalUnet, init_params, temporal_conv
from planner.models.value import ValueNet


def n_params(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize(
    ("horizon", "dim_mults", "attention"),
    [(8, (1,), False), (16, (1, 2), False), (32, (1, 2, 4), True), (24, (1, 2, 2, 2), False)],
)
def test_unet_keeps_the_trajectory_shape(horizon, dim_mults, attention):
    unet = TemporalUnet(transition_dim=5, dim=8, dim_mults=dim_mults, attention=attention)
    x = jnp.ones((3, horizon, 5))
    t = jnp.array([0, 3, 9])
    params = init_params(unet, jax.random.key(0), x, t)
    assert jax.jit(unet.apply)(params, x, t).shape == (3, horizon, 5)


@pytest.mark.parametrize("length", [2, 4, 16])
def test_temporal_conv_equals_lax_convolution(length):
    """Short inputs take the explicit-taps path; its values and gradients equal lax's."""
    x = jax.random.normal(jax.random.key(0), (3, length, 6))
    kernel = jax.random.normal(jax.random.key(1), (5, 6, 7))

    def lax_conv(x, kernel):
        dims = ("NWC", "WIO", "NWC")
        return jax.lax.conv_general_dilated(x, kernel, (1,), [(2, 2)], dimension_numbers=dims)

    def ours(x, kernel):
        dims = ("NWC", "WIO", "NWC")
        return temporal_conv(x, kernel, (1,), [(2, 2)], dimension_numbers=dims)

    np.testing.assert_allclose(ours(x, kernel), lax_conv(x, kernel), rtol=1e-5, atol=1e-5)
    grads = jax.grad(lambda x, k: jnp.sum(jnp.sin(ours(x, k))), argnums=(0, 1))(x, kernel)
    expected = jax.grad(lambda x, k: jnp.sum(jnp.sin(lax_conv(x, k))), argnums=(0, 1))(x, kernel)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_umaze_parameter_count_matches_the_reference():
    config = load_config("configs/maze2d-umaze.yaml")
    unet = make_unet(config, transition_dim=6)
    shapes = jax.eval_shape(unet.init, jax.random.key(0), jnp.zeros((1, 128, 6)), jnp.zeros((1,)))
    assert abs(n_params(shapes) / 3.68e6 - 1) < 0.05


def test_value_net_outputs_one_number_per_window():
    value = ValueNet(dim=8, dim_mults=(1, 2))
    x = jnp.ones((4, 16, 6))
    params = init_params(value, jax.random.key(0), x, jnp.zeros(4, jnp.int32))
    assert jax.jit(value.apply)(params, x, jnp.arange(4)).shape == (4,)


def test_cosine_schedule_is_monotone_and_noising_inverts():
    schedule = cosine_schedule(64)
    alphas = np.asarray(schedule.alphas_cumprod)
    assert np.all(np.diff(alphas) < 0) and alphas[0] > 0.99 and alphas[-1] < 1e-3
    key_x, key_n = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(key_x, (4, 8, 3))
    noise = jax.random.normal(key_n, (4, 8, 3))
    t = jnp.array([0, 10, 30, 50])
    x_t = add_noise(schedule, x0, t, noise)
    np.testing.assert_allclose(start_from_noise(schedule, x_t, t, noise), x0, atol=2e-3)


def test_conditioned_entries_are_exact():
    start = jnp.arange(8.0).reshape(2, 4)
    goal = -start
    mask, values = endpoint_conditions(start, goal, horizon=6, action_dim=2)
    x = impose(jnp.full((2, 6, 6), 7.5), mask, values)
    np.testing.assert_array_equal(x[:, 0, 2:], start)
    np.testing.assert_array_equal(x[:, -1, 2:], goal)
    np.testing.assert_array_equal(x[:, 1:-1], 7.5)  # nothing else touched
    np.testing.assert_array_equal(x[:, [0, -1], :2], 7.5)  # actions are never conditioned
    start_only, _ = endpoint_conditions(start, None, horizon=6, action_dim=2)
    assert int(start_only.sum()) == 4


def test_loss_weights_follow_the_reference():
    weights = loss_weights(
        horizon=4, transition_dim=3, action_dim=1, action_weight=10, discount=0.5
    )
    np.testing.assert_allclose(weights[:, 1], [1, 0.5, 0.25, 0.125])
    assert weights[0, 0] == 10 and weights[1, 0] == 0.5


@pytest.mark.parametrize("energy_form", ["norm", "residual"])
def test_energy_prediction_is_the_energy_gradient(energy_form):
    config = load_config(
        "configs/maze2d-umaze.yaml",
        [
            "model.dim=8",
            "model.dim_mults=[1, 2]",
            "diffusion.predict_epsilon=true",
            "diffusion.parameterization=energy",
            f"diffusion.energy_form={energy_form}",
        ],
    )
    with jax.enable_x64(True):
        unet = make_unet(config, transition_dim=6)
        x = jax.random.normal(jax.random.key(1), (2, 16, 6), jnp.float64)
        t = jnp.array([3, 40])
        params = init_params(unet, jax.random.key(0), x, t)
        prediction = jax.jit(make_predict_fn(unet, config))(params, x, t)
        energy = jax.jit(make_energy_fn(unet, energy_form))
        direction = jax.random.normal(jax.random.key(2), x.shape, jnp.float64)
        epsilon = 1e-5
        finite_difference = (
            energy(params, x + epsilon * direction, t) - energy(params, x - epsilon * direction, t)
        ) / (2 * epsilon)
        directional = jnp.sum(prediction * direction, axis=(1, 2))
        np.testing.assert_allclose(directional, finite_difference, rtol=1e-6)


def test_bfloat16_evaluation_computes_in_bfloat16_and_stays_near_float32():
    from planner.diffusion.denoisers import in_precision

    unet = TemporalUnet(transition_dim=6, dim=16, dim_mults=(1, 2, 4))
    x = jax.random.normal(jax.random.key(0), (2, 16, 6))
    t = jnp.array([3, 7])
    params = init_params(unet, jax.random.key(1), x, t)
    low = in_precision(unet.apply, jnp.bfloat16)
    convolutions = [
        line
        for line in str(jax.make_jaxpr(low)(params, x, t)).splitlines()
        if "conv_general" in line
    ]
    assert convolutions and all("bf16[" in line.split("=")[0] for line in convolutions)
    exact, approximate = unet.apply(params, x, t), low(params, x, t)
    assert approximate.dtype == jnp.float32
    error = float(jnp.max(jnp.abs(approximate - exact)) / jnp.max(jnp.abs(exact)))
    assert 0 < error < 0.05  # bfloat16 rounding (8 mantissa bits), nothing worse
