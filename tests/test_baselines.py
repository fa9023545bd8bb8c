"""The baselines that show what a model adds: the execution layer with no model (the shortest
route over the known walls), and map-assisted rows marked as such in the composition tables."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from planner.config import EvalConfig
from planner.control.policies import receding_horizon_policy
from planner.energies.terms import Layout
from planner.eval.evaluate import map_assisted, replan_rule, route_plan_fn, route_rows
from planner.eval.rollouts import run_episodes
from planner.eval.scenarios import markdown_section
from planner.planning.maze import routes_to
from planner.tasks.maze2d import POINT_RADIUS, WALL_OFFSET

MAZE = Layout(action_dim=2, observation_dim=4)


def test_route_rows_move_at_the_speed_and_rest_at_the_end():
    points = np.array([[1.0, 1.0], [1.0, 2.0]])  # 1 m along y
    rows = route_rows(points, speed=3.0, horizon=50, layout=MAZE)
    assert rows.shape == (50, 6)
    positions, velocities = rows[:, 2:4], rows[:, 4:6]
    np.testing.assert_allclose(np.diff(positions[:33], axis=0), [[0.0, 0.03]] * 32, atol=1e-9)
    np.testing.assert_allclose(velocities[:33], [[0.0, 3.0]] * 33, atol=1e-9)
    np.testing.assert_allclose(positions[34:], [[1.0, 2.0]] * 16)  # arrived after 1 / 0.03 rows
    np.testing.assert_allclose(velocities[34:], 0.0)
    assert not rows[:, :2].any()  # no actions


def test_a_route_begins_beside_a_wall_the_point_mass_touches(umaze):
    routes = routes_to(umaze, umaze.eval_goal, (), MAZE)
    touching = np.array([3.0, 4 - WALL_OFFSET - POINT_RADIUS])  # against the wall cell (3, 4)
    assert len(routes.path(touching)) == 0  # nearer the wall than the routes' clearance
    path = routes.path(touching, snap=POINT_RADIUS)
    assert np.linalg.norm(path[0] - touching) <= POINT_RADIUS
    np.testing.assert_allclose(path[-1], umaze.eval_goal, atol=0.05)


def test_the_no_model_baseline_reaches_the_goal_in_open_umaze(umaze):
    settings = EvalConfig(policy="route", replan_every=50, lookahead=0.2)
    plan_fn = route_plan_fn(umaze, {0: ()}, MAZE, settings.route_speed)
    policy = receding_horizon_policy(plan_fn, MAZE, replan_rule(settings), None, 0.2)
    envs = [umaze.make_env() for _ in range(4)]
    rollouts = run_episodes(envs, policy, range(4), seed=0, steps=umaze.max_episode_steps)
    assert rollouts.success.all()
    assert not rollouts.contacts.any()
    final = rollouts.observations[:, -1, :2]
    assert (np.linalg.norm(final - rollouts.goals, axis=1) < 0.5).all()  # the latch holds it


def test_a_composition_row_that_used_route_reach_is_marked_map_assisted():
    assert map_assisted(EvalConfig(policy="mpc", route_reach=6.0))
    assert map_assisted(EvalConfig(policy="route"))
    assert not map_assisted(EvalConfig(policy="mpc"))
    stored = json.loads(Path("results/composition.json").read_text())["scenarios"]
    record = copy.deepcopy(stored["closed-loop-medium"])
    record["rows"] = [row for row in record["rows"] if row["layout"] == "upper route closed"]
    for index, row in enumerate(record["rows"]):
        row["map_assisted"] = index == 0
    lines = markdown_section(record).splitlines()
    method_cells = {line.split(" | ")[0] for line in lines if line.startswith("| ")}
    first, *others = (row["method"] for row in record["rows"])
    assert f"| {first} (map-assisted)" in method_cells
    assert all(f"| {other}" in method_cells for other in others)
    assert sum("(map-assisted)" in line for line in lines) == 1
