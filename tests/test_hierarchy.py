"""Hierarchical (jumpy) planning: subgoal models, their interpolation, and following it."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_control import LAYOUT, follow

from planner.config import load_config
from planner.control.policies import ReplanRule, planner_plan_fn, receding_horizon_policy
from planner.control.tracking import pursuit_actions
from planner.data.windows import interpolate_rows
from planner.energies.base import term_energies, violations
from planner.energies.terms import CONSTRAINT_TYPES, OBJECTIVE_TYPES, terms_from_specs
from planner.planning.build import build_planner, plan_config
from planner.planning.command import run_plan
from planner.planning.run import load_run
from planner.tasks.maze2d import get_maze_task

JUMP = 4  # tiny_jumpy_run's steps between subgoals


def test_a_tiny_jumpy_model_plans_subgoals_and_their_interpolation(tiny_jumpy_run):
    run = load_run(tiny_jumpy_run)
    config = plan_config(run, None, [])
    planner, _, _ = build_planner(run, config, get_maze_task(config.data.dataset))
    assert planner.jump == JUMP and planner.steps == (planner.horizon - 1) * JUMP + 1
    start, goal = np.array([[3.0, 1.0, 0.0, 0.0]]), np.array([[1.0, 1.0]])
    plans = planner.plan(jax.random.key(0), start, goal, n_candidates=2)
    assert plans.trajectories.shape == (1, 2, planner.steps, 6)
    assert plans.knots.shape == (1, 2, planner.horizon, 6)
    np.testing.assert_allclose(
        plans.trajectories, interpolate_rows(jnp.asarray(plans.knots), JUMP), atol=1e-5
    )
    positions = plans.chosen[0, :, 2:4]
    np.testing.assert_allclose(positions[0], start[0, :2], atol=1e-4)  # imposed start ...
    np.testing.assert_allclose(positions[-1], goal[0], atol=1e-4)  # ... and goal, in steps
    with pytest.raises(ValueError, match="not on a subgoal row"):
        planner.plan(jax.random.key(0), start, goal, waypoints=[(JUMP + 1, [2.0, 1.0])])


def test_mpc_replans_a_jumpy_planner_in_environment_steps(tiny_jumpy_run):
    run = load_run(tiny_jumpy_run)
    config = plan_config(run, None, [])
    planner, _, _ = build_planner(run, config, get_maze_task(config.data.dataset))
    plan_fn = planner_plan_fn({0: planner}, 2, 0, 1)
    policy = receding_horizon_policy(plan_fn, run.layout, ReplanRule(every=3), lookahead=0.2)
    starts = np.array([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    state = policy.init(np.arange(2), starts, np.tile([[1.0, 3.0]], (2, 1)))
    assert state.plans.shape == (2, planner.steps, 6)
    for _ in range(4):  # a warm-started replan with the goal pinned at the planned arrival
        actions, state, _ = policy.act(state, starts)
    assert actions.shape == (2, 2) and state.replans.tolist() == [1, 1]


def test_planner_plan_draws_both_levels_of_a_jumpy_run(tiny_jumpy_run, tmp_path):
    summary = run_plan(tiny_jumpy_run, out_dir=tmp_path)
    assert summary["subgoal_every"] == JUMP
    assert (tmp_path / "plan.png").stat().st_size > 0


def test_obstacle_checks_cover_the_segments_between_subgoals():
    (box,) = terms_from_specs(
        [{"type": "box", "low": [0.4, 0.4], "high": [0.6, 0.6]}],
        LAYOUT,
        CONSTRAINT_TYPES,
        "plan.constraints",
    )
    knots = np.zeros((1, 3, 6), np.float32)  # [a, x, y, vx, vy]: (0, 0) -> (1, 1) -> (2, 1)
    knots[0, :, 2:4] = [[0.0, 0.0], [1.0, 1.0], [2.0, 1.0]]
    assert float(violations([box], jnp.asarray(knots))[0, 0]) == 0.0  # every knot is outside
    segments = box.replace(jump=10)
    assert float(violations([segments], jnp.asarray(knots))[0, 0]) > 0.0  # the segment is not


def test_pursuit_of_interpolated_subgoals_reaches_the_last_one_in_open_space():
    positions = np.array([[0.0, 0.0], [0.4, 0.1], [0.8, 0.4], [1.0, 0.8]])
    velocities = np.diff(positions, axis=0, append=positions[-1:]) / 0.15  # 15 steps of 0.01 s
    knots = np.concatenate([positions, velocities], axis=1)[None]
    states = np.asarray(interpolate_rows(jnp.asarray(knots), 15))
    progress = np.zeros(1, int)

    def pursue(observations, step):
        nonlocal progress
        actions, progress = pursuit_actions(states, observations, progress, LAYOUT, 0.2)
        return actions

    positions = follow(pursue, steps=300)
    assert np.linalg.norm(positions[-1] - knots[0, -1, :2]) < 0.05  # at the last subgoal
    assert np.linalg.norm(np.diff(positions[-20:], axis=0), axis=1).max() < 1e-3  # at rest


@pytest.mark.parametrize("maze", ["umaze", "medium", "large"])
def test_the_jumpy_configs_load_and_cover_the_flat_horizon(maze):
    jumpy = load_config(f"configs/maze2d-{maze}-jumpy.yaml").data
    flat = load_config(f"configs/maze2d-{maze}.yaml").data
    assert jumpy.jump > 1 and jumpy.padding and jumpy.rest_dims == (2, 3)
    assert (jumpy.horizon - 1) * jumpy.jump + 1 >= 0.95 * flat.horizon


def test_the_demo_config_loads():
    makefile = Path("Makefile").read_text().splitlines()
    demo = next(line for line in makefile if "train --config" in line)
    config_file = demo.split("--config ")[1].split()[0]
    overrides = [part.split()[0] for part in demo.split("--set ")[1:]]
    assert load_config(config_file, overrides).data.jump > 1


def test_path_length_ranks_a_detour_below_the_direct_path():
    (length,) = terms_from_specs(
        [{"type": "path_length", "n_guide_steps": 0}], LAYOUT, OBJECTIVE_TYPES, "plan.objectives"
    )
    plans = np.zeros((2, 3, 6), np.float32)
    plans[0, :, 2:4] = [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]  # straight, 1 m
    plans[1, :, 2:4] = [[0.0, 0.0], [0.5, 0.5], [1.0, 0.0]]  # a detour, about 1.41 m
    energies = np.asarray(term_energies([length], jnp.asarray(plans)))[:, 0]
    np.testing.assert_allclose(energies, [1.0, np.sqrt(2)], rtol=1e-5)
