"""Sharding the batch over several devices gives one device's results (to float tolerance).

XLA fixes the number of CPU devices when JAX starts, so the checks run in a child pytest process
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``; in the parent they skip.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_training import TINY, synthetic_windows

from planner.config import load_config
from planner.data.normalize import Normalizer
from planner.diffusion.denoisers import network_denoiser
from planner.diffusion.samplers import SamplerSpec
from planner.diffusion.schedule import cosine_schedule
from planner.diffusion.train import (
    init_train_state,
    make_optimizer,
    make_train_chunk,
    make_train_step,
)
from planner.energies.terms import Layout, circle_obstacle
from planner.models.denoiser import make_predict_fn, make_unet
from planner.models.unet import init_params
from planner.planning.planner import Planner
from planner.runtime import data_mesh
from planner.training import build_setup

CHILD = "PLANNER_TWO_DEVICE_CHILD"
in_child = pytest.mark.skipif(
    os.environ.get(CHILD) != "1", reason="runs in the two-device child process"
)


def test_sharded_training_and_planning_equal_one_device():
    env = {**os.environ, CHILD: "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    result = subprocess.run(
        [*command, "-k", "two_devices"], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "2 passed" in result.stdout, result.stdout[-2000:]


def one_and_two_device_meshes():
    assert jax.device_count() == 2
    return data_mesh(jax.devices()[:1]), data_mesh()


@in_child
def test_two_devices_train_like_one():
    """Same losses and gradient norms step by step. Parameters agree to within Adam's step: it
    moves a parameter by about ``learning_rate`` whatever its gradient's size, so a near-zero
    gradient whose last bits differ can move it the other way."""
    config = load_config("configs/maze2d-umaze.yaml", TINY)
    windows = synthetic_windows()
    setup = build_setup(config, "diffusion", windows)
    optimizer = make_optimizer(config.train, 4)
    results = []
    for mesh in one_and_two_device_meshes():
        chunk = make_train_chunk(
            make_train_step(setup.loss_fn, optimizer, config.train), config.train, mesh
        )
        state, metrics = init_train_state(setup.initial_params, optimizer, seed=0), []
        for _ in range(4):
            state, step_metrics = chunk(state, windows)
            metrics.append([step_metrics["loss"][0], step_metrics["grad_norm"][0]])
        results.append((state.params, np.array(metrics)))
    (params_one, metrics_one), (params_two, metrics_two) = results
    np.testing.assert_allclose(metrics_one, metrics_two, rtol=1e-5)
    adam_bound = 4 * config.train.learning_rate
    for one, two in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_two), strict=True):
        np.testing.assert_allclose(one, two, rtol=0, atol=adam_bound)


@in_child
def test_two_devices_plan_like_one():
    config = load_config("configs/maze2d-umaze.yaml", TINY)
    layout, horizon = Layout(action_dim=2, observation_dim=4), 16
    schedule = cosine_schedule(config.diffusion.n_diffusion_steps)
    unet = make_unet(config, transition_dim=6)
    x, t = jnp.zeros((1, horizon, 6)), jnp.zeros((1,), jnp.int32)
    params = init_params(unet, jax.random.key(0), x, t)
    denoiser = network_denoiser(params, make_predict_fn(unet, config), schedule, False)
    normalizer = Normalizer(shift=jnp.full(6, 2.0), scale=jnp.full(6, 2.0))
    obstacle = circle_obstacle(layout, [2.0, 2.0], 0.5)
    start = np.array([[1.0, 1.0, 0.0, 0.0], [3.0, 1.0, 0.0, 0.0]])
    goal = np.array([[3.0, 3.0], [1.0, 3.0]])
    plans = []
    for mesh in one_and_two_device_meshes():
        spec = SamplerSpec(method="ddim", n_steps=4)
        planner = Planner(
            denoiser, schedule, normalizer, layout, horizon, spec, (obstacle,), mesh=mesh
        )
        plans.append(planner.plan(jax.random.key(3), start, goal, n_candidates=3))
    one, two = plans
    np.testing.assert_allclose(one.trajectories, two.trajectories, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(one.best, two.best)
